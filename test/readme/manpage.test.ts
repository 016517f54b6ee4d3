// docs/nfqwall.8 must render (`man -l docs/nfqwall.8`) and name every command and option the CLI has.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../paths';
import { CONFIG_KEYS } from '../../src/config/config';
import { cliCommands, cliOptions } from './docs';

const page = path.join(packageRoot(), 'docs', 'nfqwall.8');
const source = fs.readFileSync(page, 'utf8');
/** The page as plain text, roff's `\-` read as `-` and font changes removed. */
const plain = source.replace(/\\-/g, '-').replace(/\\f[BIRP]/g, '');

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

describe('docs/nfqwall.8', () => {
  it('is a man(7) page: .TH first, then NAME, SYNOPSIS, DESCRIPTION', () => {
    const macros = source.split('\n').filter((l) => l.startsWith('.') && !l.startsWith('.\\"'));
    assert.match(macros[0] ?? '', /^\.TH NFQWALL 8 /);
    const sections = macros.filter((l) => l.startsWith('.SH ')).map((l) => l.slice(4));
    assert.deepEqual(sections.slice(0, 3), ['NAME', 'SYNOPSIS', 'DESCRIPTION']);
    const known = /^\.(TH|SH|SS|PP|P|LP|TP|IP|RS|RE|B|I|BI|BR|IB|IR|RB|RI|br|nf|fi|sp|in)\b/;
    for (const m of macros) assert.match(m, known, `unknown macro line: ${m}`);
  });

  it('renders with man -l, without warnings', function () {
    if (!has('man')) {
      process.stderr.write('manpage: skipping the render check: no `man` (apt-get install man-db)\n');
      this.skip();
    }
    const r = spawnSync('man', ['--warnings', '-l', page], {
      encoding: 'utf8',
      env: { ...process.env, MANWIDTH: '100', MANPAGER: 'cat', PAGER: 'cat' },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', 'man/groff warnings');
    assert.match(r.stdout, /^NAME\n\s+nfqwall - a userspace packet filter/m);
    assert.match(r.stdout, /^COMMANDS$/m);
  });

  it('documents every command and option of the CLI', () => {
    for (const cmd of cliCommands()) {
      assert.ok(new RegExp(`^\\.SS ${cmd}$`, 'm').test(source), `no ".SS ${cmd}" section`);
      const start = source.indexOf(`.SS ${cmd}\n`);
      const next = source.slice(start + 4).search(/^\.S[SH] /m);
      const sectionText = (next < 0 ? source.slice(start) : source.slice(start, start + 4 + next)).replace(/\\-/g, '-').replace(/\\f[BIRP]/g, '');
      for (const opt of cliOptions(cmd)) assert.ok(new RegExp(`(^|[\\s"])${opt}(?![a-z0-9-])`).test(sectionText), `nfqwall ${cmd} ${opt} is not in its section`);
    }
    assert.ok(plain.includes('fail-closed'));
  });

  it('documents every configuration key under CONFIGURATION FILE, each as a .TP item', () => {
    const start = source.indexOf('\n.SH CONFIGURATION FILE\n');
    assert.ok(start >= 0, 'no ".SH CONFIGURATION FILE" section');
    const end = source.indexOf('\n.SH ', start + 1);
    const items = [...source.slice(start, end).matchAll(/^\.TP\n\.B[IR]? "?([a-z_0-9]+) = /gm)].map((m) => m[1]!);
    assert.deepEqual([...items].sort(), [...CONFIG_KEYS].sort());
  });
});
