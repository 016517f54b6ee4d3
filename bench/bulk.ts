// TCP bulk transfer through fw (`NFQW_BENCH_ONLY=tcp`; part of `npm run bench`): one connection from client to server
// writing as fast as it can, as most bytes on a network travel. The kernel moves such a stream in segmentation-offloaded
// packets (TSO and GSO are on on veth by default): one packet of up to 64 KiB stands for dozens of wire segments, and
// a queue program that binds with NFQA_CFG_F_GSO (nfqwall, the C loop) gets each such packet whole, in one trip. One
// that does not (the npm binding) makes the kernel cut it into its segments first, and takes a trip for each.
import type { Host, Lab } from '../test/lab/lab';
import { THREE_HOST } from '../test/lab/lab';
import { queuedPackets, withMode, type Mode } from './modes';

export const BULK_PORT = 9200;

export interface BulkSample {
  bytes: number;
  seconds: number;
  /**
   * Wire segments the measured run's bytes make (bytes / the connection's MSS): what the kernel would send without
   * offloads. The server's `InSegs` is no such count: it counts a packet that crossed veth whole as one.
   */
  segments: number;
  /** Packets the queue program received (data and ACKs, warm-up included) per wire segment (warm-up included). */
  trips?: number;
  note: string;
}

async function send(client: Host, bin: string, cpu: string, seconds: number): Promise<{ bytes: number; seconds: number; segments: number }> {
  const r = await client.exec(['taskset', '-c', cpu, bin, 'send', THREE_HOST.server4, String(BULK_PORT), String(seconds)], {
    timeoutMs: seconds * 1000 + 60_000,
  });
  const m = /^bytes (\d+) seconds ([\d.]+) mss (\d+)$/m.exec(r.stdout);
  if (m === null || Number(m[3]) <= 0) throw new Error(`tcp-bulk printed no result: ${r.stdout} ${r.stderr}`);
  return { bytes: Number(m[1]), seconds: Number(m[2]), segments: Math.ceil(Number(m[1]) / Number(m[3])) };
}

/** One transfer of `seconds` (after a 0.3 s warm-up connection) while `mode` holds the queue at fw. */
export async function bulk(lab: Lab, mode: Mode, bin: string, cpu: string, seconds: number): Promise<BulkSample> {
  const client = lab.host('client');
  const { result, note } = await withMode(lab, mode, async () => {
    const warm = await send(client, bin, cpu, 0.3);
    const run = await send(client, bin, cpu, seconds);
    return { ...run, allSegments: warm.segments + run.segments };
  });
  const queued = queuedPackets(note);
  return {
    bytes: result.bytes,
    seconds: result.seconds,
    segments: result.segments,
    trips: queued === undefined ? undefined : queued / Math.max(1, result.allSegments),
    note,
  };
}
