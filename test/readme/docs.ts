// Reading the documentation's runnable parts: `console` blocks (a `$ command` line, then its output) and the CLI.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../paths';

export interface ConsoleExample {
  file: string;
  line: number;
  argv: string[];
  output: string;
}

/** Splits a command line the way sh would for the simple words the docs use: spaces, "double" and 'single' quotes. */
export function shellWords(cmd: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|([^\s"']+)/g;
  let cur: string | undefined;
  let lastEnd = -1;
  for (let m = re.exec(cmd); m !== null; m = re.exec(cmd)) {
    const piece = m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? m[3] ?? '');
    if (cur !== undefined && m.index === lastEnd) cur += piece;
    else {
      if (cur !== undefined) words.push(cur);
      cur = piece;
    }
    lastEnd = m.index + m[0].length;
  }
  if (cur !== undefined) words.push(cur);
  return words;
}

/** Every ```console block of a Markdown file, one example per `$ ` line. */
export function consoleExamples(file: string): ConsoleExample[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const out: ConsoleExample[] = [];
  let inBlock = false;
  let cur: ConsoleExample | undefined;
  lines.forEach((text, i) => {
    if (!inBlock) {
      if (/^```console\s*$/.test(text)) inBlock = true;
      return;
    }
    if (/^```\s*$/.test(text)) {
      inBlock = false;
      if (cur) out.push(cur);
      cur = undefined;
      return;
    }
    if (text.startsWith('$ ')) {
      if (cur) out.push(cur);
      cur = { file, line: i + 1, argv: shellWords(text.slice(2)), output: '' };
    } else if (cur) cur.output += `${text}\n`;
  });
  return out;
}

/** The nfqwall CLI as the docs name it (`nfqwall` or `./bin/nfqwall`): node and the bin script. */
export function nfqwallArgv(): string[] {
  return [process.execPath, path.join(packageRoot(), 'bin', 'nfqwall')];
}

export function runNfqwall(args: string[]): string {
  const [node, ...pre] = nfqwallArgv();
  return execFileSync(node!, [...pre, ...args], { cwd: packageRoot(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Subcommands listed by `nfqwall --help` (without `help`). */
export function cliCommands(): string[] {
  const help = runNfqwall(['--help']);
  const after = help.slice(help.indexOf('Commands:'));
  return [...after.matchAll(/^ {2}([a-z][a-z0-9-]*)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
}

/** Long options (`--name`) and short ones (`-x`) listed by `nfqwall CMD --help`, without --help itself. */
export function cliOptions(cmd: string): string[] {
  const help = runNfqwall([cmd, '--help']);
  const after = help.slice(help.indexOf('Options:'));
  const opts = new Set<string>();
  for (const m of after.matchAll(/^ {2}(-[a-z0-9], )?(--[a-z0-9-]+)/gm)) {
    if (m[2] === '--help') continue;
    opts.add(m[2]!);
    if (m[1] !== undefined) opts.add(m[1].slice(0, 2));
  }
  return [...opts];
}
