// Watches files for change by watching their DIRECTORIES: editors and `mv` replace a file by renaming a new one over
// it, which a watch on the file itself (bound to the old inode) never sees. Events are filtered by basename and
// debounced, so a burst of writes (truncate, write, rename) makes one callback.
import fs from 'node:fs';
import path from 'node:path';

export interface FileWatcherOptions {
  debounceMs?: number;
  onError?: (err: Error, dir: string) => void;
}

export class FileWatcher {
  private readonly watchers: fs.FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The basenames that changed since the last callback (for the log line). */
  private changed = new Set<string>();

  constructor(
    files: readonly string[],
    private readonly onChange: (changed: string[]) => void,
    private readonly opts: FileWatcherOptions = {},
  ) {
    const byDir = new Map<string, Set<string>>();
    for (const f of files) {
      const abs = path.resolve(f);
      const dir = path.dirname(abs);
      let names = byDir.get(dir);
      if (!names) byDir.set(dir, (names = new Set()));
      names.add(path.basename(abs));
    }
    for (const [dir, names] of byDir) {
      try {
        const w = fs.watch(dir, { persistent: false }, (_event, filename) => {
          // Some platforms give no name: then any event in the directory counts.
          const name = filename === null ? undefined : filename.toString();
          if (name !== undefined && !names.has(name)) return;
          this.fire(name === undefined ? dir : path.join(dir, name));
        });
        w.on('error', (err) => this.opts.onError?.(err, dir));
        this.watchers.push(w);
      } catch (err) {
        this.opts.onError?.(err instanceof Error ? err : new Error(String(err)), dir);
      }
    }
  }

  get watching(): number {
    return this.watchers.length;
  }

  private fire(file: string): void {
    if (this.closed) return;
    this.changed.add(file);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const changed = [...this.changed];
      this.changed.clear();
      if (!this.closed) this.onChange(changed);
    }, this.opts.debounceMs ?? 200);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const w of this.watchers) w.close();
    this.watchers.length = 0;
  }
}
