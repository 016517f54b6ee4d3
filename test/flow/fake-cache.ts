// The native FlowCache as src/daemon/flow-paths.ts sees it, for tests without the addon: hits are pushed by hand.
import type { FlowCacheLike } from '../../src/daemon/flow-paths';

export class FakeCache implements FlowCacheLike {
  pending: number[] = [];
  drains = 0;
  constructor(public gen = 1) {}
  generation(): number {
    return this.gen;
  }
  invalidate(): number {
    return ++this.gen;
  }
  drain(): Float64Array {
    this.drains++;
    const out = Float64Array.from(this.pending);
    this.pending = [];
    return out;
  }
  hit(generation: number, path: number, packets: number, bytes: number): void {
    this.pending.push(generation, path, packets, bytes);
  }
}
