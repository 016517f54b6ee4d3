// Random filter-table rulesets (fixed seeds), each with packets that hit and nearly miss every rule, through the
// kernel and through nfqwall: the same wire output and the same per-rule counters, or the test fails with every
// difference listed.
import assert from 'node:assert/strict';
import { isRoot } from '../lab/lab';
import { compareCounters, compareWire, hitRules } from './compare';
import { generatePackets, generateRuleset, type GenOptions } from './generate';
import { createPair, type DiffSide } from './harness';
import { build } from './packets';
import { sleep } from '../lab/daemon';

const GAP_MS = 3;

const CASES: (GenOptions & { title: string })[] = [
  { title: 'no REJECT, seed 1', seed: 1, userChains: 3, rulesPerChain: 6, reject: false },
  { title: 'no REJECT, seed 2', seed: 2, userChains: 4, rulesPerChain: 5, reject: false },
  { title: 'no REJECT, seed 3', seed: 3, userChains: 2, rulesPerChain: 8, reject: false },
  { title: 'with REJECT, seed 11', seed: 11, userChains: 3, rulesPerChain: 6, reject: true },
  { title: 'with REJECT, seed 12', seed: 12, userChains: 4, rulesPerChain: 5, reject: true },
  { title: 'mangle + raw + filter, seed 21', seed: 21, userChains: 3, rulesPerChain: 5, reject: true, mangle: true },
  { title: 'mangle + raw + filter, seed 22', seed: 22, userChains: 2, rulesPerChain: 6, reject: true, mangle: true },
  { title: 'mangle + raw + filter, seed 23', seed: 23, userChains: 3, rulesPerChain: 4, reject: false, mangle: true },
  { title: 'IPv6, seed 31', seed: 31, userChains: 3, rulesPerChain: 6, reject: true, family: 6 },
  { title: 'IPv6, seed 32', seed: 32, userChains: 2, rulesPerChain: 6, reject: false, family: 6 },
  { title: 'IPv6 mangle + raw + filter, seed 33', seed: 33, userChains: 3, rulesPerChain: 5, reject: true, mangle: true, family: 6 },
];

describe('differential: random filter rulesets, kernel vs nfqwall', function () {
  let pair: { kernel: DiffSide; nfqwall: DiffSide } | undefined;
  before(async function () {
    this.timeout(120_000);
    if (!isRoot()) {
      process.stderr.write('differential: skipping: network-namespace tests need root\n');
      this.skip();
    }
    pair = await createPair();
    // A new link's IPv6 MLD reports go out during its first second or two; fw would count its own.
    await sleep(2500);
  });
  after(async function () {
    this.timeout(60_000);
    if (pair) await Promise.allSettled([pair.kernel.destroy(), pair.nfqwall.destroy()]);
  });

  for (const c of CASES) {
    it(`${c.title}: same wire output and counters`, async function () {
      this.timeout(120_000);
      const p = pair!;
      const rs = generateRuleset(c);
      const specs = generatePackets(rs, c.seed, 3);
      const items = specs.map((s, i) => build(s, i));
      await Promise.all([p.kernel.load(rs.text, rs.family), p.nfqwall.load(rs.text, rs.family)]);
      const [k, n] = await Promise.all([p.kernel.run(items, GAP_MS), p.nfqwall.run(items, GAP_MS)]);
      const [ks, ns] = await Promise.all([p.kernel.save(rs.family), p.nfqwall.save(rs.family)]);
      const diffs = [...compareWire(specs, k, n), ...compareCounters(rs.text, ks, ns), ...(await p.nfqwall.selfReported())];
      // The run must have exercised the ruleset: most rules matched something on the kernel side.
      const cover = hitRules(ks, rs.text);
      assert.ok(k.frames.length > 0, 'nothing reached the wire on the kernel side');
      assert.ok(cover.hit >= cover.total / 2, `only ${cover.hit} of ${cover.total} rules matched a packet`);
      assert.ok(diffs.length === 0, `${diffs.length} differences for\n${rs.text}\n  ${diffs.join('\n  ')}`);
    });
  }
});
