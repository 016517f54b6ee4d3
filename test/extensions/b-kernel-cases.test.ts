// Replays the recorded iptables 1.8.9 cases (b-kernel-cases.ts) against the running kernel in a throwaway network
// namespace, so the oracle the part-B match tests trust stays the kernel's. Root only.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { KERNEL_CASES, type KernelCase } from './b-kernel-cases';

const PROTO_NAMES: Readonly<Record<number, string>> = {
  6: 'tcp',
  17: 'udp',
  33: 'dccp',
  50: 'esp',
  51: 'ah',
  135: 'mh',
};

function whyNot(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  for (const bin of ['ip', 'iptables-restore', 'ip6tables-restore']) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) return `${bin} not installed`;
  }
  const v = spawnSync('iptables', ['--version'], { encoding: 'utf8' }).stdout ?? '';
  if (!v.includes('v1.8.9')) return `recorded with iptables v1.8.9, this host has ${v.trim()}`;
  return undefined;
}

describe('part-B kernel cases, replayed in a namespace (root)', function () {
  this.timeout(180_000);
  const ns = `nfqw-h6-${process.pid}`;
  let ready = false;

  before(function () {
    const why = whyNot();
    if (why) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    const r = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
    assert.equal(r.status, 0, `ip netns add ${ns}: ${r.stderr}`);
    ready = true;
  });

  after(() => {
    if (ready) spawnSync('ip', ['netns', 'del', ns]);
  });

  function replay(name: string, c: KernelCase): string | null {
    const family = c.family === 6 ? 'ip6tables' : 'iptables';
    const table = c.table ?? 'filter';
    const proto = c.proto !== undefined ? `-p ${PROTO_NAMES[c.proto]} ` : '';
    const line = `-A ${c.chain} ${proto}-m ${name} ${c.opts}`.trimEnd();
    const exec = (args: string[], input?: string) =>
      spawnSync('ip', ['netns', 'exec', ns, ...args], { input, encoding: 'utf8' });
    const r = exec([`${family}-restore`], `*${table}\n${line}\nCOMMIT\n`);
    if (r.status !== 0) return null;
    const saved = exec([`${family}-save`, '-t', table])
      .stdout.split('\n')
      .find((l) => l.startsWith('-A '));
    exec([`${family}-restore`], `*${table}\nCOMMIT\n`);
    assert.ok(saved, 'iptables-save printed no rule');
    // -p is printed by its /etc/protocols name (mh as mobility-header): take what follows `-m NAME`.
    const at = saved.indexOf(` -m ${name}`);
    assert.ok(saved.startsWith(`-A ${c.chain} `) && at > 0, saved);
    return saved.slice(at + ` -m ${name}`.length).trimStart();
  }

  it('the kernel still accepts, refuses and prints every recorded case as recorded', () => {
    const wrong: string[] = [];
    let n = 0;
    for (const [name, cases] of Object.entries(KERNEL_CASES)) {
      for (const c of cases) {
        const got = replay(name, c);
        n++;
        if (got !== c.expect) wrong.push(`${name} ${c.opts}: recorded ${c.expect}, kernel now ${got}`);
      }
    }
    assert.ok(n > 300, `only ${n} cases`);
    assert.deepEqual(wrong, []);
  });
});
