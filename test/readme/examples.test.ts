// What the README and docs/ show a new user must stay true: every example rule file checks, the README's "runs
// today" column says what `nfqwall run` would do with it, the command examples print what they print, and every
// command the CLI has is documented.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { checkEnforceable } from '../../src/rules/enforce';
import { loadRuleFile } from '../../src/rules/load';
import { packageRoot } from '../paths';
import { cliCommands, consoleExamples, nfqwallArgv, shellWords } from './docs';

const root = packageRoot();
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');

function ruleFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...ruleFiles(p));
    else if (e.name.endsWith('.rules')) out.push(p);
  }
  return out.sort();
}
const examples = ruleFiles(path.join(root, 'examples')).map((f) => path.relative(root, f));

/** The README's examples table: file -> whether its "runs today" cell starts with "yes". */
function readmeExampleRows(): Map<string, boolean> {
  const rows = new Map<string, boolean>();
  for (const m of readme.matchAll(/^\| \[(examples\/[^\]]+\.rules)\]\([^)]*\) \|[^|]*\| ([^|]*) \|$/gm)) rows.set(m[1]!, /^yes\b/.test(m[2]!));
  return rows;
}

function enforceable(file: string): boolean {
  try {
    checkEnforceable(loadRuleFile(path.join(root, file)));
    return true;
  } catch {
    return false;
  }
}

describe('examples/', () => {
  it('has rule files', () => {
    assert.ok(examples.length >= 3, `examples: ${examples.join(', ')}`);
  });

  for (const file of examples) {
    it(`nfqwall check ${file}`, () => {
      const [node, ...pre] = nfqwallArgv();
      const out = execFileSync(node!, [...pre, 'check', file], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      assert.match(out, new RegExp(`^${file.replace(/[.]/g, '\\.')}: ok, IPv[46], `));
    });
  }

  it('are each in the README table, whose "runs today" column matches what nfqwall run accepts', () => {
    const rows = readmeExampleRows();
    assert.deepEqual([...rows.keys()].sort(), examples, 'README examples table vs examples/**/*.rules');
    for (const [file, yes] of rows)
      assert.equal(enforceable(file), yes, `${file}: README says runs today = ${yes ? 'yes' : 'no'}`);
  });
});

describe('README and docs command examples', () => {
  const files = ['README.md', 'docs/troubleshooting.md'].map((f) => path.join(root, f));
  const all = files.flatMap((f) => consoleExamples(f));

  it('there are some, and the README ones cover check and explain', () => {
    const readmeCmds = all.filter((e) => e.file.endsWith('README.md')).map((e) => e.argv[1]);
    assert.ok(readmeCmds.includes('check') && readmeCmds.includes('explain'), `README commands: ${readmeCmds.join(', ')}`);
  });

  for (const ex of all) {
    it(`${path.relative(root, ex.file)}:${ex.line}: ${ex.argv.slice(1, 3).join(' ')} prints what is shown`, () => {
      assert.match(ex.argv[0] ?? '', /^(\.\/bin\/)?nfqwall$/, 'examples run nfqwall (non-root commands only)');
      assert.ok(['check', 'save', 'explain'].includes(ex.argv[1] ?? ''), `not a non-root command: ${ex.argv.join(' ')}`);
      const [node, ...pre] = nfqwallArgv();
      const out = execFileSync(node!, [...pre, ...ex.argv.slice(1)], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      assert.equal(out, ex.output);
    });
  }

  it('shellWords splits as sh does for quoted words', () => {
    assert.deepEqual(shellWords(`a "b c" 'd e' f"g h"`), ['a', 'b c', 'd e', 'fg h']);
  });
});

describe('README command reference', () => {
  const section = readme.slice(readme.indexOf('## Commands'), readme.indexOf('\n## ', readme.indexOf('## Commands') + 1));

  it('documents every nfqwall subcommand', () => {
    const cmds = cliCommands();
    assert.ok(cmds.includes('run') && cmds.includes('check'), `commands: ${cmds.join(', ')}`);
    for (const c of cmds) assert.ok(section.includes(`\`nfqwall ${c}`), `README "## Commands" does not document nfqwall ${c}`);
  });

  it('documents no subcommand the CLI does not have', () => {
    const cmds = new Set(cliCommands());
    for (const m of section.matchAll(/^- `nfqwall ([a-z][a-z-]*)/gm)) assert.ok(cmds.has(m[1]!), `README documents nfqwall ${m[1]}, which does not exist`);
  });
});
