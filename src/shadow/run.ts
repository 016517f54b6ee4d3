// `nfqwall shadow` as a function: load the rulesets, capture (live or from a file), evaluate, report.
import fs from 'node:fs';
import { LinuxHost } from '../engine/host';
import { EmptySets, IpsetStore } from '../engine/sets';
import type { SetView } from '../extensions/types';
import { controlRequest, DEFAULT_CONTROL_PATH } from '../daemon/control';
import { loadRuleFile } from '../rules/load';
import { parseRuleset } from '../rules/parse';
import { LiveCapture, linkInfo, type LinkInfo } from './capture';
import { LinuxRoutes } from './hookpath';
import { readCaptureFile } from './pcap';
import { buildReport, DROPS_UNREPORTED, formatReport, type CaptureInfo, type ShadowReport } from './report';
import { Shadow, type Rulesets } from './shadow';

export interface ShadowCliOptions {
  rules?: string;
  rules6?: string;
  iface?: string[];
  read?: string;
  filter?: string;
  duration?: string;
  json?: boolean;
  against?: string;
  against6?: string;
  /** Compare with the ruleset the daemon at `control` enforces now (its `save` answer). */
  againstRunning?: boolean;
  control?: string;
  ipset?: string[];
  maxFlows?: string;
  maxConnections?: string;
  progress?: boolean;
}

export interface ShadowIo {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Resolves when the user asks to stop (SIGINT/SIGTERM). */
  interrupted?: Promise<void>;
}

function loadRulesets(v4: string | undefined, v6: string | undefined): Rulesets {
  const rs: Rulesets = {};
  if (v4 !== undefined) rs.v4 = loadRuleFile(v4, 4);
  if (v6 !== undefined) rs.v6 = loadRuleFile(v6, 6);
  return rs;
}

/**
 * The ruleset a running daemon enforces, from its control socket (`save` without counters): the text it answers is
 * parsed like a rule file, so the comparison uses exactly what runs, whatever file it was loaded from.
 */
export async function runningRulesets(control: string): Promise<Rulesets> {
  const res = await controlRequest(control, { cmd: 'save', counters: false });
  if (!res.ok) throw new Error(`${control}: ${res.error}`);
  const texts = (res as { rulesets?: { ipv4?: unknown; ipv6?: unknown } }).rulesets ?? {};
  const rs: Rulesets = {};
  if (typeof texts.ipv4 === 'string') rs.v4 = parseRuleset(texts.ipv4, `${control} (running IPv4 rules)`, { family: 4 });
  if (typeof texts.ipv6 === 'string') rs.v6 = parseRuleset(texts.ipv6, `${control} (running IPv6 rules)`, { family: 6 });
  if (rs.v4 === undefined && rs.v6 === undefined) throw new Error(`${control}: the daemon holds no ruleset`);
  return rs;
}

function positive(s: string | undefined, what: string): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${what} must be a positive number, not "${s}"`);
  return n;
}

/** Waits for the duration or the interruption, whichever comes first; a pending timer would keep the process alive. */
async function sleepOr(ms: number | undefined, interrupted: Promise<void> | undefined): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const waits: Promise<void>[] = [];
  if (ms !== undefined) waits.push(new Promise((r) => (timer = setTimeout(r, ms))));
  if (interrupted) waits.push(interrupted);
  try {
    await (waits.length > 0 ? Promise.race(waits) : new Promise<void>(() => undefined));
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

export async function runShadow(o: ShadowCliOptions, io: ShadowIo): Promise<ShadowReport> {
  if (o.rules === undefined && o.rules6 === undefined) throw new Error('give --rules FILE and/or --rules6 FILE');
  const ifaces = o.iface ?? [];
  if (o.read === undefined && ifaces.length === 0) throw new Error('give --iface IFACE (repeatable) or --read FILE');
  const seconds = positive(o.duration, '--duration');
  const maxFlows = positive(o.maxFlows, '--max-flows');
  const maxConnections = positive(o.maxConnections, '--max-connections');
  const candidate = loadRulesets(o.rules, o.rules6);
  const fromFiles = o.against !== undefined || o.against6 !== undefined;
  if (fromFiles && o.againstRunning === true) throw new Error('give --against/--against6 FILE or --against-running, not both');
  if (o.control !== undefined && o.againstRunning !== true) throw new Error('--control is only used with --against-running');
  const control = o.control ?? DEFAULT_CONTROL_PATH;
  const against = fromFiles ? loadRulesets(o.against, o.against6) : o.againstRunning === true ? await runningRulesets(control) : undefined;
  const againstSource = fromFiles
    ? [o.against, o.against6].filter((x) => x !== undefined).map((x) => `file ${x}`).join(', ')
    : o.againstRunning === true
      ? `the running daemon's rules (${control})`
      : undefined;
  let sets: SetView = new EmptySets();
  if (o.ipset && o.ipset.length > 0) {
    const store = new IpsetStore();
    for (const f of o.ipset) store.load(fs.readFileSync(f, 'utf8'));
    sets = store;
  }
  const host = await LinuxHost.load();
  const routes = new LinuxRoutes();
  const links = new Map<string, LinkInfo>();
  for (const i of ifaces) {
    try {
      links.set(i, linkInfo(i));
    } catch (e) {
      if (o.read === undefined) throw new Error(`interface ${i}: ${e instanceof Error ? e.message : String(e)}`);
      links.set(i, {}); // a file captured elsewhere may name an interface this host does not have
    }
  }
  const macs = new Map<string, Uint8Array>();
  for (const [i, l] of links) if (l.mac) macs.set(i, l.mac);
  const shadow = new Shadow({ candidate, against, host, sets, routes, ifaceMacs: macs, maxFlows, maxConnections });
  for (const i of ifaces) shadow.capture(i);
  const started = Date.now();
  const capture: CaptureInfo = { source: '', seconds: 0 };
  if (againstSource !== undefined) capture.against = againstSource;

  if (o.read !== undefined) {
    const fallback = ifaces[0] ?? 'unknown';
    let lastProgress = Date.now();
    let n = 0;
    for (const rec of readCaptureFile(o.read)) {
      if (o.progress !== false && (++n & 1023) === 0 && Date.now() - lastProgress >= 1000) {
        lastProgress = Date.now();
        const s = shadow.stats;
        io.err(`shadow: ${s.frames} read, ${s.evaluated} evaluated, ${s.verdicts.drop} would drop, ${s.verdicts.reject} would reject${against ? `, ${s.differing} differ` : ''}\n`);
      }
      const frame = { iface: rec.iface ?? fallback, linktype: rec.linktype, data: rec.data, origLength: rec.origLength, time: rec.time };
      shadow.process(rec.direction ? { ...frame, direction: rec.direction } : frame);
    }
    capture.source = `file ${o.read}`;
    capture.dropsNote = 'read from a file: whatever the capturing tool dropped is not known here';
  } else {
    const seen = new Map<string, number>();
    const live = new LiveCapture((f) => {
      seen.set(f.iface, (seen.get(f.iface) ?? 0) + 1);
      shadow.process(f);
    });
    try {
      for (const i of ifaces) live.open(i, o.filter ?? '');
      io.err(`shadow: capturing on ${ifaces.join(', ')}${o.filter ? ` (filter: ${o.filter})` : ''}; nothing is enforced\n`);
      const progress = o.progress !== false
        ? setInterval(() => {
            const s = shadow.stats;
            const drops = live.drops();
            io.err(
              `shadow: ${s.frames} seen, ${s.evaluated} evaluated, ${s.verdicts.drop} would drop, ${s.verdicts.reject} would reject` +
                (against ? `, ${s.differing} differ` : '') +
                `; drops: ${drops === undefined ? DROPS_UNREPORTED : drops}\n`,
            );
          }, 1000)
        : undefined;
      await sleepOr(seconds === undefined ? undefined : seconds * 1000, io.interrupted);
      if (progress) clearInterval(progress);
      capture.captureDrops = live.drops();
    } finally {
      live.close();
    }
    capture.source = `live on ${ifaces.join(', ')}`;
    const notes: string[] = [];
    if (capture.captureDrops === undefined) notes.push('the cap module (0.2) has no pcap_stats, so libpcap cannot tell what it dropped');
    for (const i of ifaces) {
      const before = links.get(i)?.packets;
      let after: number | undefined;
      try {
        after = linkInfo(i).packets;
      } catch {
        after = undefined;
      }
      if (before === undefined || after === undefined) continue;
      const counted = after - before;
      const got = seen.get(i) ?? 0;
      notes.push(`${i} counted ${counted} packets, the capture saw ${got}${o.filter ? ' (--filter excludes some)' : counted > got ? ` (${counted - got} missing: dropped by the capture or not IP-counted)` : ''}`);
    }
    if (live.truncated > 0) notes.push(`${live.truncated} frames truncated by the capture buffer`);
    capture.dropsNote = notes.join('; ');
  }
  capture.seconds = (Date.now() - started) / 1000;
  const report = buildReport(shadow, capture);
  io.out(o.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return report;
}
