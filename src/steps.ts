// Long jobs on the daemon's one thread (parsing a 100,000-rule file, preparing it for the engine) must not stop the
// packet batches that arrive meanwhile: the native side gives packets the overload verdict once 64 batches wait.
// Such a job is written once, as a generator that yields between units of work; `runSync` runs it to the end (CLI,
// tests, start-up), `runSliced` gives the event loop a turn whenever a slice of time is used up.
export type Steps<T> = Generator<void, T, void>;

export function runSync<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
  }
}

/** Runs `steps`, yielding to the event loop (setImmediate: after pending I/O callbacks) every `sliceMs`. */
export async function runSliced<T>(steps: Steps<T>, sliceMs = 4): Promise<T> {
  let start = performance.now();
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
    if (performance.now() - start >= sliceMs) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      start = performance.now();
    }
  }
}
