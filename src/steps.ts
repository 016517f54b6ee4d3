// Long jobs on the daemon's one thread (parsing a 100,000-rule file, preparing it for the engine) must not stop the
// packet batches that arrive meanwhile: the native side gives packets the overload verdict once 64 batches wait.
// Such a job is written once, as a generator that yields between units of work; `runSync` runs it to the end (CLI,
// tests, start-up), `runSliced` gives the event loop a turn whenever a slice of time is used up.
export type Steps<T> = Generator<void, T, void>;

/**
 * `check`, when given, runs between slices (every CHECK_EVERY steps for runSync) and may throw to abandon the job, as
 * the heap budget's check does (src/daemon/heap.ts): the generator is closed, so its `finally` blocks run.
 */
export function runSync<T>(steps: Steps<T>, check?: () => void): T {
  for (let n = 1; ; n++) {
    const r = steps.next();
    if (r.done === true) return r.value;
    if (check !== undefined && n % CHECK_EVERY === 0) abandonIfThrows(steps, check);
  }
}

const CHECK_EVERY = 1024;

/** Runs `steps`, yielding to the event loop (setImmediate: after pending I/O callbacks) every `sliceMs`. */
export async function runSliced<T>(steps: Steps<T>, check?: () => void, sliceMs = 4): Promise<T> {
  let start = performance.now();
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
    if (performance.now() - start >= sliceMs) {
      if (check !== undefined) abandonIfThrows(steps, check);
      await new Promise<void>((resolve) => setImmediate(resolve));
      start = performance.now();
    }
  }
}

function abandonIfThrows(steps: Steps<unknown>, check: () => void): void {
  try {
    check();
  } catch (err) {
    steps.return(undefined as never);
    throw err;
  }
}
