// Parse benchmark: a kube-proxy-style nat table of 10,000 services x 3 endpoints (~110,000 rules, ~40,000 chains),
// parsed and validated by nfqwall, and restored by the kernel's iptables-restore into a throwaway namespace in the
// same run. Run: `npx tsx bench/parse.ts [services] [endpoints]` (root for the iptables-restore half).
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { ParseCache } from '../src/rules/line-cache';
import { parseRuleset } from '../src/rules/parse';

function chainId(kind: string, n: number): string {
  // kube-proxy's chain suffix is 16 base32 characters of a hash; any unique 16-character string has the same cost.
  return `KUBE-${kind}-${n.toString(36).toUpperCase().padStart(16, '0')}`;
}

/** Variations of the generated file, as kube-proxy's syncs make them (bench/reload.ts). */
export interface KubeProxyVariant {
  /** Services whose endpoints were all replaced (new pods: new addresses and endpoint chain names); no line moves. */
  replaced?: ReadonlySet<number>;
  /** Services scaled up by one endpoint: four more lines, so every later line moves. */
  scaledUp?: ReadonlySet<number>;
  /** Another seed for every chain name: a file sharing almost no line with the unsalted one. */
  salt?: number;
}

export function kubeProxyRules(services: number, endpoints: number, variant: KubeProxyVariant = {}): string {
  const salt = (variant.salt ?? 0) * 0x10000000;
  const decl: string[] = [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    ':KUBE-SERVICES - [0:0]',
    ':KUBE-MARK-MASQ - [0:0]',
    ':KUBE-POSTROUTING - [0:0]',
  ];
  const rules: string[] = [
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
  ];
  let ep = 0;
  for (let s = 0; s < services; s++) {
    const svc = chainId('SVC', s + salt);
    const name = `ns${s % 97}/svc${s}:p80`;
    const vip = `172.30.${(s >> 8) & 255}.${s & 255}`;
    decl.push(`:${svc} - [0:0]`);
    rules.push(
      `-A KUBE-SERVICES -m comment --comment "${name} cluster IP" -m tcp -p tcp -d ${vip} --dport 80 -j ${svc}`,
      `-A ${svc} -m comment --comment "${name} cluster IP" -m tcp -p tcp -d ${vip} --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ`,
    );
    const replaced = variant.replaced?.has(s) === true;
    const count = variant.scaledUp?.has(s) === true ? endpoints + 1 : endpoints;
    for (let e = 0; e < count; e++) {
      // The endpoint numbers of other services stay put: a scaled-up service's extra endpoint has one of its own.
      const n = e < endpoints ? ep++ : 0x8000000 + s;
      const sep = chainId('SEP', n + salt + (replaced ? 0x4000000 : 0));
      const pod = `10.${(((n >> 16) & 127) | (replaced ? 128 : 0)) + (e < endpoints ? 0 : 64)}.${(n >> 8) & 255}.${n & 255}`;
      decl.push(`:${sep} - [0:0]`);
      const left = count - e;
      rules.push(
        left > 1
          ? `-A ${svc} -m comment --comment "${name} -> ${pod}:80" -m statistic --mode random --probability ${(1 / left).toFixed(10)} -j ${sep}`
          : `-A ${svc} -m comment --comment "${name} -> ${pod}:80" -j ${sep}`,
        `-A ${sep} -m comment --comment ${name} -s ${pod} -j KUBE-MARK-MASQ`,
        `-A ${sep} -m comment --comment ${name} -m tcp -p tcp -j DNAT --to-destination ${pod}:80`,
      );
    }
  }
  return `${decl.join('\n')}\n${rules.join('\n')}\nCOMMIT\n`;
}

/** One iptables-restore of the file into a fresh namespace: its wall time, or why there is none. */
function kernelRestoreOnce(text: string, ns: string): number | string {
  const add = spawnSync('ip', ['netns', 'add', ns]);
  if (add.status !== 0) return `skipped (ip netns add: ${add.stderr.toString().trim()})`;
  try {
    const t0 = performance.now();
    const r = spawnSync('ip', ['netns', 'exec', ns, 'iptables-restore'], { input: text, maxBuffer: 1 << 26 });
    const ms = performance.now() - t0;
    if (r.status !== 0) return `failed: ${r.stderr.toString().trim().slice(0, 300)}`;
    return ms;
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
}

/** The kernel's restores of the file, as many as nfqwall's runs are compared with (fewer: each takes seconds). */
const KERNEL_RUNS = 3;

function kernelRestore(text: string): number[] | string {
  if (process.getuid?.() !== 0) return 'skipped (needs root)';
  const runs: number[] = [];
  for (let k = 0; k < KERNEL_RUNS; k++) {
    const r = kernelRestoreOnce(text, `nfqw-bench-parse-${process.pid}-${k}`);
    if (typeof r === 'string') return r;
    runs.push(r);
  }
  return runs;
}

interface ParseTiming {
  median: number;
  best: number;
  runs: number[];
  cpu: number[];
  rules: number;
  chains: number;
}

/** Timed runs after the warm-up: the machine is shared and noisy, so the figure is their median. */
const RUNS = 5;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function timeParse(text: string): ParseTiming {
  // One warm-up so the JIT has seen the code, then the timed runs.
  parseRuleset(text, 'bench.rules', { family: 4 });
  const runs: number[] = [];
  const cpu: number[] = [];
  let rules = 0;
  let chains = 0;
  for (let k = 0; k < RUNS; k++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const rs = parseRuleset(text, 'bench.rules', { family: 4 });
    const c1 = process.cpuUsage(c0);
    runs.push(performance.now() - t0);
    // CPU time of the process (all threads, GC included): steadier than wall time on a shared machine.
    cpu.push((c1.user + c1.system) / 1000);
    rules = 0;
    chains = 0;
    for (const t of rs.tables.values())
      for (const c of t.chains.values()) {
        chains++;
        rules += c.rules.length;
      }
  }
  return { median: median(runs), best: Math.min(...runs), runs, cpu, rules, chains };
}

/**
 * A reparse reusing the previous one (src/rules/line-cache.ts), as a reload does: each run reads a version with 5
 * other services' endpoints replaced than the one before.
 */
function timeWarmParse(services: number, endpoints: number): ParseTiming {
  const spread = (k: number) => new Set(Array.from({ length: 5 }, (_, i) => (Math.floor(((i + 0.5) * services) / 5) + k) % services));
  const versions = Array.from({ length: RUNS + 1 }, (_, k) => kubeProxyRules(services, endpoints, { replaced: spread(k) }));
  const cache = new ParseCache();
  parseRuleset(versions[0], 'bench.rules', { family: 4, cache });
  const runs: number[] = [];
  const cpu: number[] = [];
  let rules = 0;
  let chains = 0;
  for (let k = 1; k <= RUNS; k++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const rs = parseRuleset(versions[k], 'bench.rules', { family: 4, cache });
    const c1 = process.cpuUsage(c0);
    runs.push(performance.now() - t0);
    cpu.push((c1.user + c1.system) / 1000);
    rules = 0;
    chains = 0;
    for (const t of rs.tables.values())
      for (const c of t.chains.values()) {
        chains++;
        rules += c.rules.length;
      }
  }
  return { median: median(runs), best: Math.min(...runs), runs, cpu, rules, chains };
}

function describe(t: ParseTiming): string {
  return (
    `${t.median.toFixed(0)} ms median, ${t.best.toFixed(0)} best (runs ${t.runs.map((r) => r.toFixed(0)).join(', ')}; ` +
    `CPU ${t.cpu.map((c) => c.toFixed(0)).join(', ')} ms)`
  );
}

/**
 * The same timing in a child node with a 32 MiB young generation (fewer, larger scavenges). V8 reads the size only
 * at startup, so the bench starts the child with the flag itself (nothing for the user to pass).
 */
function timeParseWithLargeYoungGeneration(services: number, endpoints: number): ParseTiming | string {
  const child = spawnSync(
    process.execPath,
    [...process.execArgv, '--max-semi-space-size=32', process.argv[1] ?? '', String(services), String(endpoints)],
    { env: { ...process.env, NFQW_BENCH_PARSE_ONLY: '1' }, encoding: 'utf8', maxBuffer: 1 << 20 },
  );
  if (child.status !== 0) return `failed: ${(child.stderr ?? '').trim().slice(0, 300)}`;
  return JSON.parse(child.stdout) as ParseTiming;
}

function main(): void {
  const services = Number(process.argv[2] ?? 10000);
  const endpoints = Number(process.argv[3] ?? 3);
  const text = kubeProxyRules(services, endpoints);
  if (process.env.NFQW_BENCH_PARSE_ONLY === '1') {
    process.stdout.write(JSON.stringify(timeParse(text)));
    return;
  }
  const lines = text.split('\n').length;
  const t = timeParse(text);
  const warm = timeWarmParse(services, endpoints);
  const big = timeParseWithLargeYoungGeneration(services, endpoints);
  const kernel = kernelRestore(text);
  process.stdout.write(
    `kube-proxy style: ${services} services x ${endpoints} endpoints: ${lines} lines, ${t.chains} chains, ${t.rules} rules\n` +
      `nfqwall parseRuleset+validate: ${describe(t)}\n` +
      `  with a 32 MiB young gen:     ${typeof big === 'string' ? big : describe(big)}\n` +
      `  reusing the last parse:      ${describe(warm)} (5 services' endpoints replaced each time)\n` +
      `kernel iptables-restore:       ${typeof kernel === 'string' ? kernel : `${median(kernel).toFixed(0)} ms median (runs ${kernel.map((r) => r.toFixed(0)).join(', ')})`}\n` +
      (typeof kernel === 'string' ? '' : `ratio kernel/nfqwall (medians): ${(median(kernel) / t.median).toFixed(2)}\n`),
  );
}

if (require.main === module && /parse\.[jt]s$/.test(process.argv[1] ?? '')) main();
