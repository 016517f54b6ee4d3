// `-m statistic --mode random`: the kernel and nfqwall draw different random numbers, so the comparison is by
// distribution: each side's match count must be a plausible draw of Binomial(n, p) (within 5 standard deviations),
// and what reaches the server must be exactly the packets the rule did not drop.
import assert from 'node:assert/strict';
import { isRoot } from '../lab/lab';
import { parseCounters } from './compare';
import { createPair, type DiffSide } from './harness';
import { build, type PacketSpec } from './packets';

const N = 400;
const CASES = [
  { p: 0.3, rules: '-A FORWARD -p udp -m statistic --mode random --probability 0.30000000000 -j DROP' },
  { p: 0.75, rules: '-A FORWARD -p udp -m statistic --mode random ! --probability 0.25000000000 -j DROP' },
];

function ruleset(body: string): string {
  return `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${body}\nCOMMIT\n`;
}

describe('differential: statistic --mode random, by distribution', function () {
  let pair: { kernel: DiffSide; nfqwall: DiffSide } | undefined;
  before(async function () {
    this.timeout(120_000);
    if (!isRoot()) {
      process.stderr.write('differential: skipping: network-namespace tests need root\n');
      this.skip();
    }
    pair = await createPair();
  });
  after(async function () {
    this.timeout(60_000);
    if (pair) await Promise.allSettled([pair.kernel.destroy(), pair.nfqwall.destroy()]);
  });

  for (const c of CASES) {
    it(`match probability ${c.p}: ${c.rules}`, async function () {
      this.timeout(120_000);
      const p = pair!;
      const rules = ruleset(c.rules);
      const specs: PacketSpec[] = Array.from({ length: N }, () => ({
        dir: 'fwd-cs', src: '198.18.0.2', dst: '198.19.0.2', proto: 17, sport: 40000, dport: 80, flags: 0,
        icmpType: 8, icmpCode: 0, ttl: 64, tos: 0, payloadLen: 4,
      }));
      const items = specs.map((s, i) => build(s, i));
      await Promise.all([p.kernel.load(rules), p.nfqwall.load(rules)]);
      const runs = await Promise.all([p.kernel.run(items, 1), p.nfqwall.run(items, 1)]);
      const saves = await Promise.all([p.kernel.save(), p.nfqwall.save()]);
      const sigma = Math.sqrt(N * c.p * (1 - c.p));
      const problems: string[] = [...(await p.nfqwall.selfReported())];
      for (const [i, side] of (['kernel', 'nfqwall'] as const).entries()) {
        const rule = parseCounters(saves[i] as string, new Set(['filter'])).find((l) => l.chain === 'FORWARD' && l.index === 0);
        const matched = rule?.packets ?? -1;
        const delivered = (runs[i]?.frames ?? []).filter((f) => f.at === 'server').length;
        if (Math.abs(matched - N * c.p) > 5 * sigma) problems.push(`${side}: ${matched} of ${N} matched, expected ${N * c.p} ± ${(5 * sigma).toFixed(0)}`);
        if (delivered !== N - matched) problems.push(`${side}: ${delivered} delivered but ${matched} of ${N} dropped`);
      }
      assert.deepEqual(problems, []);
    });
  }
});
