// Nothing named in a rule file reaches a shell: the daemon starts programs (iptables, ip monitor) only with argv
// arrays and never with a shell, and rule text with shell metacharacters is parsed, printed and saved as text.
// The lab test (faults.lab.test.ts) runs such a file through a live daemon, LOG rule included.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseRuleset } from '../../src/rules/parse';
import { saveRuleset } from '../../src/rules/save';
import { checkEnforceable } from '../../src/rules/enforce';
import { packageRoot } from '../paths';

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

describe('robust: no shell', () => {
  it('src/ starts programs only through spawn/spawnSync/execFile with argv arrays, never with a shell', () => {
    const files = sources(path.join(packageRoot(), 'src'));
    assert.ok(files.length > 50, 'found the sources');
    let users = 0;
    for (const f of files) {
      const text = fs.readFileSync(f, 'utf8');
      const imp = /import\s*\{([^}]*)\}\s*from\s*'node:child_process'/.exec(text);
      if (/require\(['"](node:)?child_process['"]\)|from\s*'child_process'|import\s+\*\s+as\s+\w+\s+from\s*'node:child_process'/.test(text)) {
        assert.fail(`${f}: child_process imported in a form this check cannot follow`);
      }
      if (imp === null) continue;
      users++;
      const names = imp[1]!.split(',').map((n) => n.trim().replace(/^type\s+/, '').split(/\s+as\s+/)[0]!).filter((n) => n !== '');
      for (const n of names) {
        assert.ok(['spawn', 'spawnSync', 'execFile', 'execFileSync', 'ChildProcess', 'SpawnOptions', 'SpawnSyncReturns'].includes(n), `${f}: imports ${n} from child_process`);
      }
      assert.doesNotMatch(text, /\bshell\s*:/, `${f}: passes a shell option`);
    }
    assert.ok(users >= 1, 'the daemon starts iptables somewhere');
  });

  it('rule text full of shell metacharacters parses, checks and saves as text, running nothing', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-noshell-'));
    try {
      const m = (s: string): string => path.join(dir, s);
      const text = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:c;touch\`x\`$(id) - [0:0]
-A INPUT -p tcp -m comment --comment "$(touch ${m('a')}); \`touch ${m('b')}\` | touch ${m('c')} && touch ${m('d')} > ${m('e')}" -j LOG --log-prefix "$(touch ${m('f')})"
-A INPUT -j c;touch\`x\`$(id)
-A c;touch\`x\`$(id) -m comment --comment "'; touch ${m('g')}; '" -j ACCEPT
COMMIT
`;
      const rs = parseRuleset(text, 'evil.rules');
      checkEnforceable(rs);
      const saved = saveRuleset(rs, { counters: false });
      assert.ok(saved.includes('--log-prefix "$(touch /'), saved); // cut at 29 characters, as iptables does
      assert.ok(saved.includes(`\`touch ${m('b')}\``), saved);
      assert.ok(saved.includes('c;touch`x`$(id)'), saved);
      assert.deepEqual(parseRuleset(saved, 'saved.rules').tables.get('filter')?.chains.get('INPUT')?.rules.length, 2);
      assert.deepEqual(fs.readdirSync(dir), [], 'something created a marker file');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
