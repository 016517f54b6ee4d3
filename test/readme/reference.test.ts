// The README's configuration and command references say what the code does: the configuration table has one row per
// key the parser knows, its defaults are the parser's, and every option a command synopsis shows is one the command
// accepts.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CONFIG_KEYS, defaultConfig, parseConfig } from '../../src/config/config';
import { packageRoot } from '../paths';
import { runNfqwall } from './docs';

const readme = fs.readFileSync(path.join(packageRoot(), 'README.md'), 'utf8');

function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `README has no "## ${title}" section`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

/** `| \`key\` | default | meaning |` rows of the configuration table. */
function configRows(): { key: string; def: string }[] {
  return [...section('Configuration').matchAll(/^\| `([a-z_0-9]+)` \| ([^|]*) \|/gm)].map((m) => ({ key: m[1]!, def: m[2]!.trim() }));
}

describe('README configuration reference', () => {
  it('has one row per configuration key, in no particular order', () => {
    const keys = configRows().map((r) => r.key);
    assert.deepEqual([...keys].sort(), [...CONFIG_KEYS].sort());
    assert.equal(new Set(keys).size, keys.length, 'a key documented twice');
  });

  it('gives the defaults the parser uses: setting a key to its documented default changes nothing', () => {
    let checked = 0;
    for (const { key, def } of configRows()) {
      const literal = /^`([^`]+)`$/.exec(def);
      if (literal === null) {
        assert.match(def, /^(none|\d+)$/, `${key}: default "${def}" is neither a \`literal\`, a number nor "none"`);
        continue;
      }
      const { config } = parseConfig(`${key} = ${literal[1]}\n`, '/etc/nfqwall/nfqwall.conf');
      delete config.file;
      assert.deepEqual(config, defaultConfig(), `${key} = ${literal[1]} is not the default`);
      checked++;
    }
    assert.ok(checked >= 10, `only ${checked} defaults checked`);
  });
});

/** Every option `nfqwall CMD --help` lists, long and short (`-L` included). */
function helpOptions(cmd: string): Set<string> {
  const help = runNfqwall([cmd, '--help']);
  const opts = new Set<string>();
  for (const m of help.slice(help.indexOf('Options:')).matchAll(/^ {2}(?:(-[a-zA-Z0-9]), )?(--[a-z0-9-]+)/gm)) {
    opts.add(m[2]!);
    if (m[1] !== undefined) opts.add(m[1]);
  }
  return opts;
}

describe('README command synopses', () => {
  /** Each `- \`nfqwall CMD ...\`` bullet: the command and the options its synopsis shows. */
  const synopses = [...section('Commands').matchAll(/^- `nfqwall ([a-z][a-z-]*)([^`]*)`/gm)].map((m) => ({
    cmd: m[1]!,
    options: [...m[2]!.matchAll(/(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z0-9])(?![\w-])/g)].map((o) => o[1]!),
  }));

  it('shows synopses with options', () => {
    assert.ok(synopses.length >= 10, `synopses: ${synopses.map((s) => s.cmd).join(', ')}`);
    assert.ok(synopses.some((s) => s.options.includes('--control')));
  });

  it('shows only options each command accepts', () => {
    const known = new Map<string, Set<string>>();
    for (const { cmd, options } of synopses) {
      if (!known.has(cmd)) known.set(cmd, helpOptions(cmd));
      for (const o of options) assert.ok(known.get(cmd)!.has(o), `README shows nfqwall ${cmd} ${o}, which \`nfqwall ${cmd} --help\` does not list`);
    }
  });
});
