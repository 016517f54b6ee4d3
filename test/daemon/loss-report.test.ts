import assert from 'node:assert/strict';
import { LossReporter, lossCounters } from '../../src/daemon/loss-report';
import type { QueueStats } from '../../src/native';

function q(over: Partial<QueueStats>): QueueStats {
  const zero = {
    queue: 0, received: 0, accepted: 0, dropped: 0, bytes: 0, batches: 0, errors: 0, enobufs: 0, overload: 0, defaulted: 0,
    maxLen: 4096, kernelQueueTotal: 0, kernelQueueDropped: 0, kernelUserDropped: 0, kernelIdSequence: 0, pendingBatches: 0, threadIdleMs: 0,
  };
  return { ...zero, ...over } as QueueStats;
}

describe('daemon: loss report', () => {
  it('sums the loss counters of every queue', () => {
    const sum = lossCounters([q({ overload: 3, kernelQueueDropped: 1 }), q({ overload: 4, enobufs: 2, ctDropped: 5, kernelUserDropped: 6 })]);
    assert.deepEqual(sum, { overload: 7, kernelQueueDropped: 1, kernelUserDropped: 6, enobufs: 2, ctDropped: 5 });
  });

  it('reports what moved since the last sample, counting from zero at the start, and nothing when nothing moved', () => {
    const r = new LossReporter();
    const base = { overload: 0, kernelQueueDropped: 0, kernelUserDropped: 0, enobufs: 0, ctDropped: 0 };
    assert.deepEqual(r.next({ ...base, overload: 10 }), { overload: 10 }, 'a flood before the first tick is reported');
    assert.equal(r.next({ ...base, overload: 10 }), undefined);
    assert.deepEqual(r.next({ ...base, overload: 12, ctDropped: 1 }), { overload: 2, ctDropped: 1 });
    // A counter that went down came from a rebound queue: its value is all new.
    assert.deepEqual(r.next({ ...base, overload: 3, ctDropped: 1 }), { overload: 3 });
  });
});
