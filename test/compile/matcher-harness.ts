// Runs packets through Engine.decide (the reference) and the native Matcher over one ruleset and compares what the
// matcher claims to decide: verdict, mark, setMark, natRan and the counters path (ids -> the engine's own Counters
// objects, by identity). A packet the matcher leaves to JavaScript (run() null) counts as slow, never as a difference.
import { compileProgram } from '../../src/compile/program';
import { Engine } from '../../src/engine/engine';
import type { Decision, PacketInput } from '../../src/engine/decision';
import { StaticHost } from '../../src/engine/host';
import { EmptySets } from '../../src/engine/sets';
import type { AddrType } from '../../src/extensions/types';
import type { Counters, Ruleset } from '../../src/rules/model';
import { formatIpAddr, parseIpAddr } from '../../src/rules/addr';
import { nativeNatRequest } from '../../src/daemon/conntrack';
import type { CtNatRequest } from '../../native/index';
import { addon, HOOK_BY_NUMBER, NF_ACCEPT, NF_DROP, NF_QUEUE, type MatcherInput, type MatcherResult } from '../../src/native';

/** The host both sides see: these addresses are LOCAL. */
export const LOCAL4 = ['198.18.0.1', '198.18.1.7', '127.0.0.1'];
export const LOCAL6 = ['2001:db8::1', '::1'];
/** Interfaces' primary addresses (MASQUERADE, REDIRECT); an interface not named here has none. */
const PRIMARY = ['198.18.0.1@eth0', '198.18.1.7@eth1', '127.0.0.1@lo', '2001:db8::1@eth0', '::1@lo'];

/** 31-bit numbers for statistic, different per packet, the same for both sides of one packet. */
export function drawsFor(seq: number): number[] {
  let x = (seq * 0x9e3779b1 + 0x7f4a7c15) >>> 0 || 1;
  const out: number[] = [];
  for (let k = 0; k < 5; k++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.push(x & 0x7fffffff);
  }
  return out;
}

const CT_STATE = { INVALID: 0, NEW: 1, ESTABLISHED: 2, RELATED: 3, UNTRACKED: 4 } as const;

export interface Tally {
  packets: number;
  decided: number;
  slow: number;
  diffs: string[];
  /** Packets the engine gave a NAT request, and of them those the matcher decided. */
  nat: number;
  natDecided: number;
  /** Packets for which statistic drew, and of them those the matcher decided. */
  drew: number;
  drewDecided: number;
}

export const newTally = (): Tally => ({ packets: 0, decided: 0, slow: 0, diffs: [], nat: 0, natDecided: 0, drew: 0, drewDecided: 0 });

export function natRate(t: Tally): string {
  return `NAT requests ${t.natDecided}/${t.nat} decided natively, statistic draws ${t.drewDecided}/${t.drew}`;
}

export function rate(t: Tally): string {
  return `${t.decided}/${t.packets} decided natively (${((100 * t.decided) / Math.max(1, t.packets)).toFixed(1)}%)`;
}

/** What the engine's verdict is as a netfilter verdict word. */
function verdictWord(d: Decision): number {
  if (d.verdict === 'accept') return NF_ACCEPT;
  if (d.verdict === 'drop') return NF_DROP;
  return (NF_QUEUE | ((d.queue ?? 0) << 16)) >>> 0;
}

function natBits(d: Decision): number {
  let b = 0;
  for (const m of d.ct?.natRan ?? []) b |= m === 'SRC' ? 1 : 2;
  return b;
}

/** The engine and the matcher over one ruleset text. */
export class Pair {
  readonly engine: Engine;
  readonly matcher = new addon.Matcher();
  readonly counters: Counters[];
  readonly words: Uint32Array;
  private readonly names: string[] = [''];
  private readonly host: StaticHost;
  /** The numbers statistic draws for the packet being checked, and how many the engine drew. */
  private draws: number[] = [0];
  private drawn = 0;
  private seq = 0;

  constructor(
    readonly rules: Ruleset,
    ifaces: readonly string[] = [],
    /** Routes of the host besides its LOCAL addresses (addrtype's longest-prefix lookup). */
    private readonly routes: { dst: string; type: AddrType }[] = [],
  ) {
    const family = rules.family;
    const primaries = new Set(PRIMARY.map((p) => p.split('@')[0]));
    this.host = new StaticHost({ local: [...PRIMARY, ...[...LOCAL4, ...LOCAL6].filter((a) => !primaries.has(a))], routes });
    this.engine = new Engine({
      rules4: family === 4 ? rules : undefined,
      rules6: family === 6 ? rules : undefined,
      host: this.host,
      sets: new EmptySets(),
      random31: () => this.draws[this.drawn++ % this.draws.length]!,
    });
    const p = compileProgram(rules, family);
    this.words = p.words;
    this.counters = p.counters;
    this.matcher.load(family, p.words, 1);
    for (const n of ifaces) this.ifindex(n);
    this.pushHost();
  }

  private pushHost(): void {
    this.matcher.setHost({
      names: this.names.map((n) => (n === '' ? undefined : n)),
      local4: LOCAL4,
      local6: LOCAL6,
      routes: this.routes.map((r) => ({ dst: r.dst.includes('/') ? r.dst : `${r.dst}/${r.dst.includes(':') ? 128 : 32}`, local: r.type === 'LOCAL' })),
      primary4: this.names.map((n) => this.primary(4, n)),
      primary6: this.names.map((n) => this.primary(6, n)),
    });
  }

  private primary(family: 4 | 6, name: string): string | undefined {
    const a = name === '' ? undefined : this.host.primaryAddress(family, name);
    return a && formatIpAddr(a);
  }

  private ifindex(name: string | undefined): number {
    if (name === undefined) return 0;
    let k = this.names.indexOf(name);
    if (k < 0) {
      k = this.names.length;
      this.names.push(name);
      this.pushHost();
    }
    return k;
  }

  input(p: PacketInput): MatcherInput {
    const ct = p.ct;
    return {
      data: p.data,
      family: p.family,
      hook: HOOK_BY_NUMBER.indexOf(p.meta.hook),
      mark: p.meta.mark >>> 0,
      inIf: this.ifindex(p.meta.inIface),
      outIf: this.ifindex(p.meta.outIface),
      physInIf: this.ifindex(p.meta.physIn),
      physOutIf: this.ifindex(p.meta.physOut),
      wireLen: p.length ?? p.data.length,
      ct: ct && { state: CT_STATE[ct.state], dir: ct.direction === 'ORIGINAL' ? 0 : 1, status: ct.status >>> 0, mark: ct.mark >>> 0 },
    };
  }

  /** Decides `p` both ways; returns the difference, or undefined. Adds to `t`. */
  check(p: PacketInput, t: Tally, what: string): string | undefined {
    const mi = this.input(p);
    this.draws = drawsFor(++this.seq);
    this.drawn = 0;
    mi.random = this.draws;
    const r = this.matcher.run(mi);
    let d: Decision;
    try {
      d = this.engine.decide(p, { flow: true });
    } catch (e) {
      // An extension the engine cannot evaluate (TPROXY, ipvs): the matcher must not have decided either.
      d = { hook: p.meta.hook, verdict: 'drop', mark: 0, markChanged: false, replies: [], logs: [] };
      if (r !== null) {
        const text = `${what}: the matcher decided where the engine throws ${(e as Error).message}`;
        t.diffs.push(text);
        t.packets++;
        t.decided++;
        return text;
      }
    }
    t.packets++;
    const hasNat = (d.ct?.nat?.length ?? 0) > 0;
    if (hasNat) t.nat++;
    if (this.drawn > 0) t.drew++;
    if (r === null) {
      t.slow++;
      return undefined;
    }
    t.decided++;
    if (hasNat) t.natDecided++;
    if (this.drawn > 0) t.drewDecided++;
    const diff = this.diff(d, r) ?? this.diffNat(d, r, mi.outIf ?? 0) ?? (this.drawn !== r.draws ? `statistic drew ${this.drawn} vs ${r.draws} times` : undefined);
    if (diff !== undefined) {
      const text = `${what}: ${diff} (hook ${p.meta.hook}, ct ${p.ct ? `${p.ct.state}/${p.ct.direction}/${p.ct.status}` : 'none'}, mark ${p.meta.mark}, in ${p.meta.inIface}, out ${p.meta.outIface}, bytes ${Buffer.from(p.data).toString('hex')})`;
      t.diffs.push(text);
      return text;
    }
    return undefined;
  }

  /** Decision.ct.nat as the daemon hands it to the connection table, against the matcher's requests. */
  diffNat(d: Decision, r: MatcherResult, outIf: number): string | undefined {
    const norm = (q: CtNatRequest): CtNatRequest => {
      const o = { ...q };
      const fam = (a: string): 4 | 6 => (a.includes(':') ? 6 : 4);
      if (o.minAddr !== undefined) o.minAddr = formatIpAddr(parseIpAddr(o.minAddr, fam(o.minAddr))!);
      if (o.maxAddr !== undefined) o.maxAddr = formatIpAddr(parseIpAddr(o.maxAddr, fam(o.maxAddr))!);
      return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1))) as unknown as CtNatRequest;
    };
    const want = JSON.stringify((d.ct?.nat ?? []).map((q) => norm(nativeNatRequest(q, outIf))));
    const got = JSON.stringify((r.nat ?? []).map(norm));
    return want === got ? undefined : `nat ${want} vs ${got}`;
  }

  diff(d: Decision, r: MatcherResult): string | undefined {
    if (d.payload !== undefined) return 'the engine rewrote the packet';
    if (d.replies.length > 0 || d.logs.length > 0) return 'the engine sent replies or logged';
    if (d.ct?.connmark !== undefined || d.ct?.notrack !== undefined)
      return `the engine changed the connection: ${JSON.stringify(d.ct)}`;
    if (verdictWord(d) !== r.verdict) return `verdict ${d.verdict}${d.queue ?? ''} (${verdictWord(d)}) vs ${r.verdict}`;
    if (d.mark >>> 0 !== r.mark >>> 0) return `mark ${d.mark} vs ${r.mark}`;
    if (d.markChanged !== r.setMark) return `setMark ${d.markChanged} vs ${r.setMark}`;
    if (natBits(d) !== r.natRan) return `natRan ${natBits(d)} vs ${r.natRan}`;
    if (d.flowStable !== r.flowStable) return `flowStable ${d.flowStable} vs ${r.flowStable}`;
    const counted = d.counted ?? [];
    const path = r.path.map((id) => this.counters[id]);
    if (counted.length !== path.length || counted.some((c, k) => c !== path[k])) {
      const name = (c: Counters | undefined): string => {
        const k = this.counters.indexOf(c as Counters);
        return k < 0 ? '?' : String(k);
      };
      return `path [${counted.map(name).join(',')}] vs [${r.path.join(',')}]`;
    }
    return undefined;
  }
}
