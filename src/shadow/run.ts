// `nfqwall shadow` as a function: load the rulesets, capture (live or from a file), evaluate, report.
import fs from 'node:fs';
import { LinuxHost } from '../engine/host';
import { EmptySets, IpsetStore } from '../engine/sets';
import type { SetView } from '../extensions/types';
import { loadRuleFile } from '../rules/load';
import { LiveCapture, linkInfo, type LinkInfo } from './capture';
import { LinuxRoutes } from './hookpath';
import { readCaptureFile } from './pcap';
import { buildReport, formatReport, type CaptureInfo, type ShadowReport } from './report';
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
  ipset?: string[];
  maxFlows?: string;
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

function positive(s: string | undefined, what: string): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${what} must be a positive number, not "${s}"`);
  return n;
}

function sleepOr(ms: number | undefined, interrupted: Promise<void> | undefined): Promise<void> {
  const waits: Promise<void>[] = [];
  if (ms !== undefined) waits.push(new Promise((r) => setTimeout(r, ms)));
  if (interrupted) waits.push(interrupted);
  return waits.length > 0 ? Promise.race(waits) : new Promise(() => undefined);
}

export async function runShadow(o: ShadowCliOptions, io: ShadowIo): Promise<ShadowReport> {
  if (o.rules === undefined && o.rules6 === undefined) throw new Error('give --rules FILE and/or --rules6 FILE');
  const ifaces = o.iface ?? [];
  if (o.read === undefined && ifaces.length === 0) throw new Error('give --iface IFACE (repeatable) or --read FILE');
  const seconds = positive(o.duration, '--duration');
  const maxFlows = positive(o.maxFlows, '--max-flows');
  const candidate = loadRulesets(o.rules, o.rules6);
  const against = o.against !== undefined || o.against6 !== undefined ? loadRulesets(o.against, o.against6) : undefined;
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
  const shadow = new Shadow({ candidate, against, host, sets, routes, ifaceMacs: macs, maxFlows });
  for (const i of ifaces) shadow.capture(i);
  const started = Date.now();
  const capture: CaptureInfo = { source: '', seconds: 0 };

  if (o.read !== undefined) {
    const fallback = ifaces[0] ?? 'unknown';
    for (const rec of readCaptureFile(o.read)) {
      const frame = { iface: rec.iface ?? fallback, linktype: rec.linktype, data: rec.data, origLength: rec.origLength };
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
                `; capture drops: ${drops === undefined ? 'unknown' : drops}\n`,
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
    if (capture.captureDrops === undefined) notes.push('libpcap drop count unavailable: the cap module has no pcap_stats');
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
