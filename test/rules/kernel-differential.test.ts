// The kernel is the oracle for the rule language: random rule lines (base options and the registry's extensions, fixed
// seed) are loaded by iptables-restore / ip6tables-restore (nft backend) in a throwaway network namespace. For every
// line, nfqwall must accept exactly what the kernel accepts, and print exactly what iptables-save prints.
// Root only. Modules whose acceptance depends on kernel objects outside the rule file (ipsets, nfacct objects,
// rate estimators, cgroups, bpf programs, the ip_vs module) are left out: their verdict is not a property of the text.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { MATCHES, TARGETS } from '../../src/extensions';
import type { Extension, OptionSpec } from '../../src/extensions/types';
import { RuleErrors } from '../../src/rules/errors';
import { lexLine } from '../../src/rules/lexer';
import type { Family, TableName } from '../../src/rules/model';
import { parseRuleset } from '../../src/rules/parse';
import { saveRuleset } from '../../src/rules/save';
import { CORPUS } from '../paths';
import { skipBecause } from '../lab/lab';

// ipvs needs the ip_vs kernel module and SECMARK/CONNSECMARK a security module (SELinux) to resolve contexts, which
// this kernel may not have: their verdict is the machine's, not the text's.
const EXTERNAL_STATE = new Set([
  'set', 'SET', 'nfacct', 'rateest', 'RATEEST', 'cgroup', 'bpf', 'IDLETIMER', 'LED', 'ipvs', 'SECMARK', 'CONNSECMARK',
]);
const SEED = Number(process.env.NFQW_DIFF_SEED ?? 0x6e66717720); // "nfqw "
const LINES_PER_FAMILY = 300;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case {
  family: Family;
  table: TableName;
  chain: string;
  /** The rule after `-A CHAIN`. */
  spec: string;
}

const VALUES = [
  '22', '1:1024', '80,443', '0x10', '0x10/0xff', '1', '0', '5/sec', '10/minute', 'NEW,ESTABLISHED', 'ESTABLISHED',
  'INVALID', 'LOCAL', 'UNICAST', 'foo', 'x', '10.0.0.1', '10.0.0.0/8', '198.18.0.1-198.18.0.9', '2001:db8::1',
  'SYN,ACK', 'SYN', 'ALL', 'NONE', 'random', 'nth', '0.5', 'eth0', 'tcp', '-1', '65536', 'abc def', '3', '100',
  'echo-request', '8', '128', 'port-unreachable', 'tcp-reset', '1.2.3.4', '1.2.3.4:80', '1.2.3.4-1.2.3.9:1000-2000',
  '2', '4', '255', 'src', 'dst', 'src,dst', 'original', 'reply', 'both', 'DNAT', 'SNAT', 'ah', 'prefix',
];

function pick<T>(rnd: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rnd() * xs.length)];
}

function quoted(v: string): string {
  return /^[^\s"\\]+$/.test(v) ? v : `"${v.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** Option values seen in the corpus (the kernel's own iptables-save output), per `ext/option`: mostly valid ones. */
function corpusSamples(): Map<string, string[][]> {
  const out = new Map<string, string[][]>();
  const dir = CORPUS;
  if (!fs.existsSync(dir)) return out;
  const exts = new Map<string, Extension>();
  for (const m of MATCHES) exts.set(`-m ${m.name}`, m);
  for (const t of TARGETS) exts.set(`-j ${t.name}`, t);
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.kernel-save'))) {
    for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      if (!line.startsWith('-A ')) continue;
      const words = lexLine(line).map((w) => w.text);
      let cur: Extension | undefined;
      for (let i = 0; i < words.length; i++) {
        if ((words[i] === '-m' || words[i] === '-j') && i + 1 < words.length) {
          cur = exts.get(`${words[i]} ${words[i + 1]}`);
          i++;
          continue;
        }
        if (!cur || !words[i].startsWith('--')) continue;
        const name = words[i].slice(2);
        const spec = cur.options.find((o) => o.name === name || o.aliases?.includes(name));
        if (!spec) continue;
        const key = `${cur.name}/${spec.name}`;
        out.set(key, [...(out.get(key) ?? []), words.slice(i + 1, i + 1 + spec.args)]);
        i += spec.args;
      }
    }
  }
  return out;
}

let samples: Map<string, string[][]> | undefined;

/** Options naming kernel objects made outside the rule file (nfct timeout policies). */
const EXTERNAL_OPTIONS = new Set(['CT/timeout']);

function extOptions(rnd: () => number, ext: Extension): string[] {
  samples ??= corpusSamples();
  const out: string[] = [];
  const opts: readonly OptionSpec[] = ext.options.filter((o) => !EXTERNAL_OPTIONS.has(`${ext.name}/${o.name}`));
  // Prefer options the corpus shows values for: those lines mostly load, so printing gets compared too.
  const known = opts.filter((o) => o.args === 0 || samples?.has(`${ext.name}/${o.name}`));
  const n = opts.length === 0 ? 0 : 1 + Math.floor(rnd() * Math.min(2, opts.length));
  const used = new Set<string>();
  for (let k = 0; k < n; k++) {
    const o = known.length > 0 && rnd() < 0.85 ? pick(rnd, known) : pick(rnd, opts);
    if (used.has(o.name)) continue;
    used.add(o.name);
    const neg = (o.invertible && rnd() < 0.25) || rnd() < 0.02;
    const seen = samples.get(`${ext.name}/${o.name}`);
    const args = seen && rnd() < 0.85 ? pick(rnd, seen) : Array.from({ length: o.args }, () => pick(rnd, VALUES));
    out.push([neg ? '!' : '', `--${o.name}`, ...args.map(quoted)].filter((x) => x !== '').join(' '));
  }
  return out;
}

function generate(family: Family, count: number, rnd: () => number): Case[] {
  const matches = MATCHES.filter((m) => !EXTERNAL_STATE.has(m.name) && (!m.family || m.family === family));
  const targets = TARGETS.filter((t) => !EXTERNAL_STATE.has(t.name) && (!t.family || t.family === family));
  const good = family === 4 ? ['198.18.0.1', '198.18.0.0/15', '10.0.0.0/255.0.255.0', '0.0.0.0/0', '1.2.3.4,5.6.7.8'] : ['2001:db8::1', '2001:db8::/32', '::/0', 'fe80::1/64', '2001:db8::/ffff:ffff::ff'];
  const bad = family === 4 ? ['1.2.3.4/33', 'host.example', '2001:db8::1', '1.2.3'] : ['2001:db8::/129', '198.18.0.1', 'fe80::1::2'];
  const protoNames = (m: readonly Extension[]) => m.filter((x) => (x as { protocolMatch?: number }).protocolMatch !== undefined).map((x) => x.name);
  const protos = [...protoNames(matches), 'all', '47', 'esp'];
  const cases: Case[] = [];
  for (let i = 0; i < count; i++) {
    const w: string[] = [];
    const addr = () => (rnd() < 0.1 ? pick(rnd, bad) : pick(rnd, good));
    const maybeNot = () => (rnd() < 0.2 ? '! ' : '');
    if (rnd() < 0.3) w.push(`${maybeNot()}-s ${addr()}`);
    if (rnd() < 0.3) w.push(`${maybeNot()}-d ${addr()}`);
    if (rnd() < 0.2) w.push(`${maybeNot()}-i ${rnd() < 0.1 ? 'a-very-long-interface' : pick(rnd, ['eth0', 'veth+'])}`);
    if (rnd() < 0.15) w.push(`${maybeNot()}-o ${pick(rnd, ['lo', 'br-+'])}`);
    let proto: string | undefined;
    if (rnd() < 0.6) {
      proto = rnd() < 0.05 ? 'bogus' : pick(rnd, protos);
      w.push(`${rnd() < 0.05 ? '! ' : ''}-p ${proto}`);
    }
    if (family === 4 && rnd() < 0.05) w.push(`${maybeNot()}-f`);
    const nm = Math.floor(rnd() * 3);
    for (let k = 0; k < nm && matches.length > 0; k++) {
      // The rule's own protocol match half the time, so protocol options get exercised with a valid -p.
      const m = proto && rnd() < 0.5 ? (matches.find((x) => x.name === proto) ?? pick(rnd, matches)) : pick(rnd, matches);
      w.push(`-m ${m.name}`, ...extOptions(rnd, m));
    }
    if (proto && rnd() < 0.15) w.push(`--dport ${pick(rnd, ['22', 'ssh', '99999'])}`);
    let table: TableName = 'filter';
    let chain = `L${i}`;
    const r = rnd();
    if (r < 0.55 && targets.length > 0) {
      const t = pick(rnd, targets);
      w.push(`-j ${t.name}`, ...extOptions(rnd, t));
      const tables = t.allowed?.tables;
      if (tables && !tables.includes('filter')) table = pick(rnd, tables);
      if (rnd() < 0.3) chain = pick(rnd, ['INPUT', 'OUTPUT', 'PREROUTING', 'POSTROUTING', 'FORWARD']);
    } else if (r < 0.65) w.push(`-j ${rnd() < 0.8 ? 'TGT' : 'NOSUCHCHAIN'}`);
    else if (r < 0.7) w.push('-g TGT');
    cases.push({ family, table, chain, spec: w.join(' ') });
  }
  return cases;
}

/** A restore file holding the cases, each user chain declared; TGT exists in every table. */
function restoreText(cases: readonly Case[]): string {
  const byTable = new Map<TableName, Case[]>();
  for (const c of cases) byTable.set(c.table, [...(byTable.get(c.table) ?? []), c]);
  let out = '';
  for (const [table, cs] of byTable) {
    out += `*${table}\n:TGT - [0:0]\n`;
    const declared = new Set<string>();
    for (const c of cs)
      if (/^L\d+$/.test(c.chain) && !declared.has(c.chain)) {
        declared.add(c.chain);
        out += `:${c.chain} - [0:0]\n`;
      }
    for (const c of cs) out += `-A ${c.chain} ${c.spec}\n`;
    out += 'COMMIT\n';
  }
  return out;
}

function nfqwallAccepts(c: Case): { ok: true } | { ok: false; why: string } {
  try {
    parseRuleset(restoreText([c]), 'gen.rules', { family: c.family });
    return { ok: true };
  } catch (e) {
    if (e instanceof RuleErrors) return { ok: false, why: e.message };
    return { ok: false, why: `CRASH ${e instanceof Error ? (e.stack ?? e.message) : String(e)}` };
  }
}

function hasRoot(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  for (const bin of ['ip', 'iptables-restore', 'ip6tables-restore', 'iptables-save', 'ip6tables-save'])
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) return `${bin} not installed`;
  return undefined;
}

describe('rules/kernel differential (root)', function () {
  this.timeout(120000);
  const ns = `nfqw-rules-${process.pid}`;
  let ready = false;

  before(function () {
    skipBecause(this, 'rules/kernel differential', hasRoot());
    const r = spawnSync('ip', ['netns', 'add', ns]);
    assert.equal(r.status, 0, `ip netns add ${ns}: ${r.stderr}`);
    ready = true;
  });
  after(() => {
    if (ready) spawnSync('ip', ['netns', 'del', ns]);
  });

  const run = (args: string[], input?: string) =>
    spawnSync('ip', ['netns', 'exec', ns, ...args], { input, encoding: 'utf8', maxBuffer: 1 << 26 });

  for (const family of [4, 6] as const) {
    it(`IPv${family}: accepts what the kernel accepts and prints what iptables-save prints`, () => {
      const restore = family === 4 ? 'iptables-restore' : 'ip6tables-restore';
      const save = family === 4 ? 'iptables-save' : 'ip6tables-save';
      const rnd = mulberry32(SEED + family);
      const cases = generate(family, LINES_PER_FAMILY, rnd);
      const ours = cases.map(nfqwallAccepts);
      const problems: string[] = [];
      for (const o of ours) if (!o.ok && o.why.startsWith('CRASH')) problems.push(o.why);

      // Refused by nfqwall: the kernel must refuse each too (one restore per line: --test would skip the kernel's
      // own checks, and each restore replaces the tables it names, so lines do not interfere).
      cases.forEach((c, k) => {
        const o = ours[k];
        if (o.ok) return;
        const r = run([restore], restoreText([c]));
        if (r.status === 0) problems.push(`kernel accepts, nfqwall refuses: ${c.table} -A ${c.chain} ${c.spec}\n    nfqwall: ${o.why}`);
      });

      // Accepted by nfqwall: one restore for all; on failure, find the lines the kernel refuses one by one.
      let accepted = cases.filter((_, k) => ours[k].ok);
      run([restore], '*filter\nCOMMIT\n*nat\nCOMMIT\n*mangle\nCOMMIT\n*raw\nCOMMIT\n');
      let r = run([restore], restoreText(accepted));
      if (process.env.NFQW_DIFF_DUMP) require('node:fs').writeFileSync(`${process.env.NFQW_DIFF_DUMP}.${family}`, restoreText(accepted));
      if (r.status !== 0) {
        const keep: Case[] = [];
        for (const c of accepted) {
          const t = run([restore], restoreText([c]));
          if (t.status === 0) keep.push(c);
          else problems.push(`kernel refuses, nfqwall accepts: ${c.table} -A ${c.chain} ${c.spec}\n    kernel: ${t.stderr.trim().split('\n').filter((x) => x.trim() !== '').slice(0, 2).join(' / ')}`);
        }
        accepted = keep;
        r = run([restore], restoreText(accepted));
        assert.equal(r.status, 0, `restore of the accepted set failed: ${r.stderr}`);
      }
      const kernelText = run([save]).stdout;
      const kernelRules = new Map<string, string[]>();
      let table = '';
      for (const line of kernelText.split('\n')) {
        if (line.startsWith('*')) table = line.slice(1);
        if (line.startsWith('-A ')) {
          const key = `${table} ${line.split(' ')[1]}`;
          kernelRules.set(key, [...(kernelRules.get(key) ?? []), line]);
        }
      }
      const oursText = saveRuleset(parseRuleset(restoreText(accepted), 'gen.rules', { family }));
      table = '';
      const ourRules = new Map<string, string[]>();
      for (const line of oursText.split('\n')) {
        if (line.startsWith('*')) table = line.slice(1);
        if (line.startsWith('-A ')) {
          const key = `${table} ${line.split(' ')[1]}`;
          ourRules.set(key, [...(ourRules.get(key) ?? []), line]);
        }
      }
      for (const key of new Set([...kernelRules.keys(), ...ourRules.keys()])) {
        const k = kernelRules.get(key) ?? [];
        const o = ourRules.get(key) ?? [];
        for (let i = 0; i < Math.max(k.length, o.length); i++)
          if (k[i] !== o[i]) problems.push(`printed differently (${key.split(' ')[0]}):\n    kernel:  ${k[i]}\n    nfqwall: ${o[i]}`);
      }
      const withExt = accepted.filter((c) => / -m |-j [A-Z]/.test(c.spec)).length;
      if (process.env.NFQW_DIFF_VERBOSE)
        process.stdout.write(`    IPv${family}: ${cases.length} lines, ${accepted.length} accepted (${withExt} with extensions)\n`);
      assert.ok(withExt > 5, `too few accepted lines with extensions (${withExt})`);
      assert.ok(accepted.length > 10, `too few accepted lines (${accepted.length}) for the comparison to mean much`);
      assert.ok(cases.length - accepted.length > 10, 'too few refused lines for the comparison to mean much');
      assert.deepEqual(problems, [], `${problems.length} disagreements with the kernel:\n${problems.join('\n')}`);
    });
  }
});
