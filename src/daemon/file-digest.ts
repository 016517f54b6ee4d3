// What the rule and ipset files hold, as one digest: a file watcher's event that leaves them as they were loaded (a
// file rewritten with the same bytes, or the event of a write a reload already read) needs no reload. Timestamps
// cannot tell: the kernel stamps writes at its tick, so two writes of the same size within a few milliseconds look
// alike. Read in chunks, so a 150 MB file does not hold the event loop; the reload then parses the bytes read.
import { createHash } from 'node:crypto';
import fs from 'node:fs';

/** What a reload reads of its files: their bytes, and one digest of them all. */
export interface FileSnapshot {
  /** Equal for two snapshots only when every file held the same bytes. */
  digest: string;
  /** By file name: the reload parses these bytes, not a second read of the files (which could hold others by then). */
  bytes: ReadonlyMap<string, Buffer>;
}

/** Bytes read between two turns of the event loop. */
const CHUNK = 1 << 20;

/** Reads and digests the files; undefined if one is unreadable (the reload that follows names it and the error). */
export async function readFiles(files: readonly string[]): Promise<FileSnapshot | undefined> {
  const parts: string[] = [];
  const bytes = new Map<string, Buffer>();
  for (const file of files) {
    const hash = createHash('sha256');
    let fh: fs.promises.FileHandle | undefined;
    try {
      fh = await fs.promises.open(file, 'r');
      // One buffer the file's size and a byte more (to see its end), read into: no chunks copied together.
      let buf = Buffer.allocUnsafe((await fh.stat()).size + 1);
      let total = 0;
      for (;;) {
        if (total === buf.length) {
          // The file grew while it was read.
          const bigger = Buffer.allocUnsafe(buf.length * 2);
          buf.copy(bigger, 0, 0, total);
          buf = bigger;
        }
        const { bytesRead } = await fh.read(buf, total, Math.min(CHUNK, buf.length - total), null);
        if (bytesRead === 0) break;
        hash.update(buf.subarray(total, total + bytesRead));
        total += bytesRead;
      }
      bytes.set(file, buf.subarray(0, total));
    } catch {
      return undefined;
    } finally {
      await fh?.close();
    }
    parts.push(hash.digest('hex'));
  }
  return { digest: parts.join(' '), bytes };
}
