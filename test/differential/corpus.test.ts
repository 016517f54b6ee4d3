// The real rulesets of ../shared/corpus that nfqwall can enforce, through the kernel and through nfqwall, with
// packets aimed at each of their rules (read from the kernel's own rendering, *.kernel-save) and near misses.
// Files nfqwall cannot enforce yet are listed as skipped, with the reason in the title.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { checkEnforceable } from '../../src/rules/enforce';
import { loadRuleFile } from '../../src/rules/load';
import { parseRuleset } from '../../src/rules/parse';
import { packageRoot, sleep } from '../lab/daemon';
import { isRoot } from '../lab/lab';
import { compareCounters, compareWire } from './compare';
import { directionsOf, hitPacket, nearMiss, Rng, ruleFromText } from './generate';
import { createPair, declareChains, parsePrereq, type DiffSide, type Prereq } from './harness';
import { execFileSync } from 'node:child_process';
import { build, DIRECTIONS, pools, type PacketSpec } from './packets';

const CORPUS = process.env['NFQW_CORPUS'] ?? path.resolve(packageRoot(), '..', 'shared', 'corpus');
// nfqwall handles a packet asynchronously: a next packet of the same flow sent too soon finds the previous one's
// connection still unconfirmed (docs/conntrack-table.md), where the kernel has already decided it.
const GAP_MS = Number(process.env['NFQW_GAP_MS'] ?? 10);

interface Case {
  file: string;
  family: 4 | 6;
  /** Why it is not compared, or undefined when it is. */
  skip?: string;
  prereq?: Prereq;
}

/** Whether a command is installed (prerequisites use ipset and nfacct, which need not be). */
function installed(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Files that show a real, reported nfqwall difference (the smallest reproduction is in cases.test.ts); listed as
 * skipped with it, run anyway with NFQW_KNOWN=1.
 */
const KNOWN: Record<string, string> = {
};

function firstLine(e: unknown): string {
  const first = (e instanceof Error ? e.message : String(e)).split('\n')[0]?.replace(/^.*?:\d+:\d+: /, '') ?? '';
  return first.length > 110 ? `${first.slice(0, 107)}...` : first;
}

function cases(): Case[] {
  if (!fs.existsSync(CORPUS)) return [];
  return fs
    .readdirSync(CORPUS)
    .filter((f) => f.endsWith('.rules'))
    .sort()
    .map((file): Case => {
      const full = path.join(CORPUS, file);
      // validate.sh's convention: *-v6.rules are ip6tables files.
      const family = file.endsWith('-v6.rules') ? 6 : 4;
      if (!fs.existsSync(full.replace(/\.rules$/, '.kernel-save'))) return { file, family, skip: 'the kernel does not load it (no .kernel-save)' };
      const prereqFile = full.replace(/\.rules$/, '.prereq');
      const prereq = fs.existsSync(prereqFile) ? parsePrereq(fs.readFileSync(prereqFile, 'utf8')) : undefined;
      const missing = [...new Set((prereq?.commands ?? []).map((c) => c.split(/\s+/)[0] as string))].filter((t) => !installed(t));
      if (missing.length > 0) return { file, family, skip: `its .prereq needs ${missing.join(', ')}, not installed` };
      try {
        const text = fs.readFileSync(full, 'utf8');
        checkEnforceable(prereq ? parseRuleset(declareChains(text, prereq.chains), full, { family }) : loadRuleFile(full, family));
      } catch (e) {
        return { file, family, skip: `nfqwall cannot enforce it: ${firstLine(e)}` };
      }
      const known = KNOWN[file];
      if (known !== undefined && process.env['NFQW_KNOWN'] !== '1') return { file, family, skip: `known difference: ${known}` };
      return { file, family, ...(prereq ? { prereq } : {}) };
    });
}

/** Packets for every rule of the kernel's rendering, plus a few ordinary ones in every direction. */
function packetsFor(kernelSave: string, seed: number, family: 4 | 6): PacketSpec[] {
  const rng = new Rng(seed);
  const out: PacketSpec[] = [];
  for (const line of kernelSave.split('\n')) {
    const r = ruleFromText(line.trim());
    if (r === undefined) continue;
    const dirs = directionsOf(r.chain);
    for (let i = 0; i < 2; i++) {
      const hit = hitPacket(rng, r, dirs, family);
      out.push(hit, nearMiss(rng, r, hit));
    }
  }
  for (const dir of DIRECTIONS) {
    const p = pools(dir, family);
    const icmp = family === 4 ? 1 : 58;
    for (const [proto, dport, flags] of [[6, 22, 2], [6, 80, 0x10], [6, 443, 0x12], [17, 53, 0], [icmp, 0, 0]] as const) {
      out.push({
        dir, src: rng.pick(p.src), dst: rng.pick(p.dst), proto, sport: 40000, dport, flags,
        icmpType: family === 4 ? 8 : 128, icmpCode: 0, ttl: 64, tos: 0, payloadLen: 8,
      });
    }
  }
  return out;
}

describe('differential: corpus rulesets, kernel vs nfqwall', function () {
  const all = cases();
  let pair: { kernel: DiffSide; nfqwall: DiffSide } | undefined;
  before(async function () {
    this.timeout(120_000);
    if (!isRoot()) {
      process.stderr.write('differential: skipping: network-namespace tests need root\n');
      this.skip();
    }
    if (all.every((c) => c.skip !== undefined)) return;
    pair = await createPair();
    // A new link's IPv6 MLD reports go out during its first second or two; fw would count its own.
    if (all.some((c) => c.family === 6 && c.skip === undefined)) await sleep(2500);
  });
  after(async function () {
    this.timeout(60_000);
    if (pair) await Promise.allSettled([pair.kernel.destroy(), pair.nfqwall.destroy()]);
  });

  it(`finds the corpus (${CORPUS})`, function () {
    assert.ok(all.length > 0, `no *.rules in ${CORPUS} (set NFQW_CORPUS)`);
  });

  for (const [n, c] of all.entries()) {
    if (c.skip !== undefined) {
      it(`${c.file}: skipped: ${c.skip}`, function () {
        this.skip();
      });
      continue;
    }
    it(`${c.file}: same wire output and counters`, async function () {
      this.timeout(120_000);
      const p = pair!;
      const full = path.join(CORPUS, c.file);
      const rules = fs.readFileSync(full, 'utf8');
      const specs = packetsFor(fs.readFileSync(full.replace(/\.rules$/, '.kernel-save'), 'utf8'), 1000 + n, c.family);
      const items = specs.map((s, i) => build(s, i));
      await Promise.all([p.kernel.load(rules, c.family, c.prereq), p.nfqwall.load(rules, c.family, c.prereq)]);
      const [k, nq] = await Promise.all([p.kernel.run(items, GAP_MS), p.nfqwall.run(items, GAP_MS)]);
      const [ks, ns] = await Promise.all([p.kernel.save(c.family), p.nfqwall.save(c.family)]);
      const diffs = [...compareWire(specs, k, nq), ...compareCounters(rules, ks, ns), ...(await p.nfqwall.selfReported())];
      assert.ok(diffs.length === 0, `${diffs.length} differences (${specs.length} packets):\n  ${diffs.join('\n  ')}`);
    });
  }
});
