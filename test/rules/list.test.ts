// `iptables -L` formatting (src/rules/list) and the `nfqwall list` command, from a file and from a daemon's control
// socket. The kernel comparison is test/rules/list-kernel.test.ts; the figures here were read off iptables 1.8.9.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { registerList } from '../../src/cli/list';
import { serveConnection } from '../../src/daemon/control';
import { formatCount, listTable } from '../../src/rules/list';
import { parseRuleset } from '../../src/rules/parse';

async function run(args: string[]): Promise<{ out: string; err: string; code: number }> {
  const program = new Command().exitOverride();
  registerList(program);
  let out = '';
  let err = '';
  const o = process.stdout.write.bind(process.stdout);
  const e = process.stderr.write.bind(process.stderr);
  const saved = process.exitCode;
  process.exitCode = 0;
  process.stdout.write = ((s: string | Uint8Array) => ((out += String(s)), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => ((err += String(s)), true)) as typeof process.stderr.write;
  try {
    await program.parseAsync(['node', 'nfqwall', ...args]);
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = saved;
  return { out, err, code };
}

const RULES =
  '*filter\n:INPUT DROP [12:3456]\n:OUTPUT ACCEPT [1234567:987654321]\n:USER - [0:0]\n' +
  '[5:300] -A INPUT -i lo -j ACCEPT\n' +
  '[100:20000] -A INPUT -s 198.18.0.0/15 -d 198.18.1.1 -p tcp -m tcp --dport 22 --tcp-flags SYN,RST,ACK SYN -j USER\n' +
  '[99999:123456789012] -A OUTPUT -m iprange --src-range 1.1.1.1-1.1.1.9 -j NFQUEUE --queue-num 3\n' +
  '-A USER -g USER2\n:USER2 - [0:0]\nCOMMIT\n';

describe('rules/list', () => {
  it('scales counts as xtables_print_num does', () => {
    assert.equal(formatCount(99999, false), '99999 ');
    assert.equal(formatCount(100000, false), ' 100K ');
    assert.equal(formatCount(1234567, false, true), '1235K ');
    assert.equal(formatCount(987654321, false, true), '988M ');
    assert.equal(formatCount(123456789012, false), ' 123G ');
    assert.equal(formatCount(123456789012, true), '123456789012 ');
    assert.equal(formatCount(5, true), '       5 ');
  });

  it('prints headers, counters, references, goto and falls back to save text for unlisted modules', () => {
    const rs = parseRuleset(RULES, 'l.rules', { family: 4 });
    const got = listTable(rs, 'filter', { verbose: true, numeric: true, lineNumbers: true }).split('\n');
    assert.equal(got[0], 'Chain INPUT (policy DROP 12 packets, 3456 bytes)');
    assert.equal(got[1], 'num   pkts bytes target     prot opt in     out     source               destination         ');
    assert.equal(got[2], '1        5   300 ACCEPT     0    --  lo     *       0.0.0.0/0            0.0.0.0/0           ');
    assert.equal(
      got[3],
      '2      100 20000 USER       6    --  *      *       198.18.0.0/15        198.18.1.1           tcp dpt:22 flags:0x16/0x02',
    );
    assert.ok(got.includes('Chain OUTPUT (policy ACCEPT 1235K packets, 988M bytes)'), got.join('\n'));
    assert.ok(got.some((l) => l.endsWith(' iprange --src-range 1.1.1.1-1.1.1.9 NFQUEUE --queue-num 3')), got.join('\n'));
    assert.ok(got.includes('Chain USER (1 references)'));
    assert.ok(got.includes('Chain USER2 (1 references)'));
    assert.ok(got.some((l) => l.endsWith('0.0.0.0/0           [goto] ')));
  });

  it('names ports and protocols without -n, but never resolves addresses', () => {
    const rs = parseRuleset(RULES, 'l.rules', { family: 4 });
    const got = listTable(rs, 'filter').split('\n');
    assert.equal(got[2], 'ACCEPT     all  --  anywhere             anywhere            ');
    assert.equal(got[3], 'USER       tcp  --  198.18.0.0/15        198.18.1.1           tcp dpt:ssh flags:SYN,RST,ACK/SYN');
  });
});

describe('cli list', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-list-'));
  const file = path.join(dir, 'r.rules');
  fs.writeFileSync(file, RULES);
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('lists a file, and refuses a bad table or neither FILE nor --control', async () => {
    const r = await run(['list', '-n', '-t', 'filter', file]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, listTable(parseRuleset(RULES, file, { family: 4 }), 'filter', { numeric: true }));
    await assert.rejects(run(['list', '-t', 'bogus', file]), /unknown table "bogus"/);
    await assert.rejects(run(['list']), /needs a FILE or --control/);
  });

  it('lists the daemon ruleset with its counters through the control socket', async () => {
    const sock = path.join(dir, 'control.sock');
    const requests: unknown[] = [];
    const server = net.createServer((s) =>
      serveConnection(s, {
        save: (req) => {
          requests.push(req);
          return { rulesets: { ipv4: RULES } };
        },
      }),
    );
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      const r = await run(['list', '-v', '-x', '-n', '--control', sock]);
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(requests, [{ cmd: 'save', counters: true }]);
      assert.match(r.out, /^Chain INPUT \(policy DROP 12 packets, 3456 bytes\)\n/);
      assert.match(r.out, /\n   99999 123456789012 NFQUEUE /);
      await assert.rejects(run(['list', '-6', '--control', sock]), /runs no IPv6 rules/);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
