// The JavaScript heap's budget (docs/robustness.md, Heap). V8 picks its heap limit at start (about 4 GB whatever the
// machine has) and ends the process when the heap reaches it; a reload holds the running rules and the new ones at
// once, so at 100,000 services it would die half way. The daemon sets its own budget instead (native/heapguard.cc):
// the heap may grow to it, and a reload that would pass it gives up at its next step with the running rules in force.
import fs from 'node:fs';
import v8 from 'node:v8';
import type { HeapGuardState } from '../native';

const MiB = 2 ** 20;

/** The addon, loaded when a budget is set (a daemon starting), so commands that never start one work without it. */
const guard = (): typeof import('../native')['addon'] => (require('../native') as typeof import('../native')).addon;

/** The memory this process may use: the machine's, or its cgroup's limit when lower (v2, then v1). */
export function memoryAvailable(): number {
  const total = Number(/^MemTotal:\s+(\d+) kB$/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) * 1024;
  let limit = total;
  for (const line of readOr('/proc/self/cgroup').split('\n')) {
    const [, controllers, dir] = line.split(':');
    if (dir === undefined) continue;
    const file =
      controllers === '' ? `/sys/fs/cgroup${dir}/memory.max` : controllers.split(',').includes('memory') ? `/sys/fs/cgroup/memory${dir}/memory.limit_in_bytes` : undefined;
    const n = file === undefined ? NaN : Number(readOr(file).trim());
    if (Number.isFinite(n) && n > 0 && n < limit) limit = n;
  }
  return limit;
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** `heap_limit = auto`: half of the memory available, and never less than V8 would allow on its own. */
export function autoHeapBudget(): number {
  return Math.max(v8.getHeapStatistics().heap_size_limit, Math.floor(memoryAvailable() / 2));
}

export class HeapBudgetExceeded extends Error {
  constructor(what: string, state: HeapGuardState) {
    super(
      `${what}: the JavaScript heap reached its budget of ${Math.round(state.budget / MiB)} MiB ` +
        `(${Math.round(state.used / MiB)} MiB in use); raise heap_limit in the configuration (or --heap-limit)`,
    );
    this.name = 'HeapBudgetExceeded';
  }
}

/**
 * How far the heap grows past what a full collection left before the next one starts, in percent of it. V8 sizes
 * that for how fast the process allocates, and between reloads the daemon allocates almost nothing: it left 10-30%,
 * less than one reload's garbage (about 70 MB over 300 live at 10,000 services), so a marking cycle ran during two
 * reloads in three and slowed each by 150-300 ms. With the live size again, one runs every four or five reloads. V8
 * still keeps the limit under halfway from the heap's size to the budget.
 */
export const HEAP_GROWTH_PERCENT = 100;

export class HeapBudget {
  private constructor(readonly bytes: number) {}

  /** Sets the process's budget and the heap's growth between collections; one per process (the guard is the main thread's). */
  static set(bytes: number): HeapBudget {
    v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWTH_PERCENT}`);
    guard().heapBudget(bytes);
    return new HeapBudget(bytes);
  }

  state(): HeapGuardState {
    return guard().heapGuard();
  }

  /**
   * A check for one job (`what` names it in the error): throws HeapBudgetExceeded once the budget has been overrun
   * since this call. The job calls it between its steps and, once it has let go of what it built, `settle()`.
   */
  watch(what: string): () => void {
    const from = guard().heapGuard().overruns;
    return () => {
      const state = guard().heapGuard();
      if (state.overruns !== from) throw new HeapBudgetExceeded(what, state);
    };
  }

  settle(): void {
    guard().heapSettle();
  }

  /**
   * A full collection now, after start-up: with the heap's margin the garbage of reading the rules from nothing stayed
   * until the first reload, which then ran a marking cycle beside it.
   */
  collect(): void {
    guard().heapCollect();
  }
}
