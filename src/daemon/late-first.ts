// The order JavaScript decides the batches of queues that have late queues (docs/flow-cache.md, Late queue). Each
// queue's batches arrive through its own thread-safe function, and Node runs one function's whole backlog before the
// next one's: under a flood, dozens of PREROUTING batches went first while FORWARD and POSTROUTING packets, already
// decided once, waited in the late queue until the kernel dropped them there. So batches are taken in here and
// decided on the next turn of the event loop: every late batch first, then one early batch, then the loop turns again
// so that late batches that came meanwhile go before the next early one. Each queue's own batches keep their order.
export class LateFirst<T> {
  private readonly late: T[] = [];
  private readonly early: T[] = [];
  private scheduled = false;

  constructor(private readonly decide: (item: T) => void) {}

  add(item: T, late: boolean): void {
    (late ? this.late : this.early).push(item);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.turn());
  }

  /** Forgets what waits (the queues are closing: the addon gives their batches the default verdict). */
  clear(): void {
    this.late.length = 0;
    this.early.length = 0;
  }

  /** Batches waiting, late and early. */
  get waiting(): { late: number; early: number } {
    return { late: this.late.length, early: this.early.length };
  }

  private turn(): void {
    this.scheduled = false;
    for (let item = this.late.shift(); item !== undefined; item = this.late.shift()) this.decide(item);
    const next = this.early.shift();
    if (next !== undefined) this.decide(next);
    if (this.late.length > 0 || this.early.length > 0) {
      this.scheduled = true;
      setImmediate(() => this.turn());
    }
  }
}
