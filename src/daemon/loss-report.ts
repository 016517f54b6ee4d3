// Packets decided without the rules (overload verdict, kernel queue full, kernel send failures, connection table
// full) are counted in metrics; an operator reading the journal must also see them, but one line per packet in a
// flood would bury everything else. So the daemon samples the counters once a second and writes one line per
// interval in which any of them moved, with the deltas.
import type { QueueStats } from '../native';

/** The counters that mean traffic was not judged by the rules, or was refused for lack of room. */
export interface LossCounters {
  overload: number;
  kernelQueueDropped: number;
  kernelUserDropped: number;
  enobufs: number;
  ctDropped: number;
}

export function lossCounters(stats: readonly QueueStats[]): LossCounters {
  const sum: LossCounters = { overload: 0, kernelQueueDropped: 0, kernelUserDropped: 0, enobufs: 0, ctDropped: 0 };
  for (const q of stats) {
    sum.overload += q.overload;
    sum.kernelQueueDropped += q.kernelQueueDropped;
    sum.kernelUserDropped += q.kernelUserDropped;
    sum.enobufs += q.enobufs;
    sum.ctDropped += q.ctDropped ?? 0;
  }
  return sum;
}

/**
 * Remembers the last sample; `next` returns what moved since it (undefined when nothing did). The first sample is
 * compared with zero: the queue's counters start at zero when it is bound, and a flood can begin before the first tick.
 */
export class LossReporter {
  private last: LossCounters = { overload: 0, kernelQueueDropped: 0, kernelUserDropped: 0, enobufs: 0, ctDropped: 0 };

  next(now: LossCounters): Partial<LossCounters> | undefined {
    const prev = this.last;
    this.last = now;
    const moved: Partial<LossCounters> = {};
    let any = false;
    for (const key of Object.keys(now) as (keyof LossCounters)[]) {
      // A counter that went down belongs to a queue that was rebound: its new value is all new.
      const d = now[key] >= prev[key] ? now[key] - prev[key] : now[key];
      if (d > 0) {
        moved[key] = d;
        any = true;
      }
    }
    return any ? moved : undefined;
  }
}
