import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { registerCheck } from '../../src/cli/check';
import { registerSave } from '../../src/cli/save';

async function run(args: string[]): Promise<{ out: string; err: string; code: number }> {
  const program = new Command().exitOverride();
  registerCheck(program);
  registerSave(program);
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

describe('cli check / save', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-cli-'));
  const good = path.join(dir, 'good.rules');
  const bad = path.join(dir, 'bad.rules');
  fs.writeFileSync(good, '*filter\n:X - [0:0]\n[1:2] -A INPUT -s 2001:db8::1 -j X\nCOMMIT\n');
  fs.writeFileSync(bad, '*filter\n-A INPUT -j NOWHERE\n-A INPUT -s host.example -j DROP\nCOMMIT\n');
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('check prints one summary line per good file and exits 0', async () => {
    const r = await run(['check', good]);
    assert.equal(r.out, `${good}: ok, IPv6, 1 table, 4 chains, 1 rule\n`);
    assert.equal(r.code, 0);
  });
  it('check prints located errors and exits 1', async () => {
    const r = await run(['check', '-4', good, bad]);
    assert.equal(r.out, '');
    assert.equal(
      r.err,
      `${good}:3:19: "2001:db8::1" is an IPv6 address, in an IPv4 rule\n` +
        `${bad}:2:13: unknown target or chain "NOWHERE" (no such chain in table filter)\n` +
        `${bad}:3:13: host/network "host.example" not found: hostnames are not resolved, write a numeric address\n`,
    );
    assert.equal(r.code, 1);
  });
  it('save prints the canonical text, with counters on -c', async () => {
    const plain = await run(['save', good]);
    assert.equal(plain.out, '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:X - [0:0]\n-A INPUT -s 2001:db8::1/128 -j X\nCOMMIT\n');
    const c = await run(['save', '-c', good]);
    assert.match(c.out, /\n\[1:2\] -A INPUT -s 2001:db8::1\/128 -j X\n/);
  });
});
