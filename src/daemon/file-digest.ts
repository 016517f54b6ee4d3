// What the rule and ipset files hold, as one digest: a file watcher's event that leaves them as they were loaded (a
// file rewritten with the same bytes, or the event of a write a reload already read) needs no reload. Timestamps
// cannot tell: the kernel stamps writes at its tick, so two writes of the same size within a few milliseconds look
// alike. Read asynchronously and hashed in chunks, so a 150 MB file does not hold the event loop; the reload then
// parses the text of the bytes read.
import { createHash } from 'node:crypto';
import fs from 'node:fs';

/** What a reload reads of its files: their text, and one digest of their bytes. */
export interface FileSnapshot {
  /** Equal for two snapshots only when every file held the same bytes. */
  digest: string;
  /**
   * By file name, decoded as UTF-8: the reload parses these, not a second read of the files (which could hold others
   * by then). Text, not the bytes: a reload then holds no buffer the size of its files, which the heap counts as
   * external memory and starts collecting for.
   */
  texts: ReadonlyMap<string, string>;
}

/** Bytes hashed between two turns of the event loop: a 150 MB file takes a tenth of a second to hash. */
const CHUNK = 1 << 20;

/** Reads and digests the files; undefined if one is unreadable (the reload that follows names it and the error). */
export async function readFiles(files: readonly string[]): Promise<FileSnapshot | undefined> {
  const parts: string[] = [];
  const texts = new Map<string, string>();
  for (const file of files) {
    let buf: Buffer;
    try {
      buf = await fs.promises.readFile(file);
    } catch {
      return undefined;
    }
    const hash = createHash('sha256');
    for (let at = 0; at < buf.length; at += CHUNK) {
      hash.update(buf.subarray(at, at + CHUNK));
      if (at + CHUNK < buf.length) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    texts.set(file, buf.toString('utf8'));
    parts.push(hash.digest('hex'));
  }
  return { digest: parts.join(' '), texts };
}
