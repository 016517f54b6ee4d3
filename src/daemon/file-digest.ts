// What the rule and ipset files hold, as one digest: a file watcher's event that leaves them as they were loaded (a
// file rewritten with the same bytes, or the event of a write a reload already read) needs no reload. Timestamps
// cannot tell: the kernel stamps writes at its tick, so two writes of the same size within a few milliseconds look
// alike. Read asynchronously and hashed on the thread pool (WebCrypto), so neither a 150 MB file nor its hashing holds
// the event loop, and a reload parses the text of the bytes read while they are hashed.
import { webcrypto } from 'node:crypto';
import fs from 'node:fs';

/** What a reload reads of its files: their text, and one digest of their bytes. */
export interface FileSnapshot {
  /** Equal for two snapshots only when every file held the same bytes; undefined if hashing failed. */
  digest: Promise<string | undefined>;
  /**
   * By file name, decoded as UTF-8: the reload parses these, not a second read of the files (which could hold others
   * by then). Text, not the bytes: a reload then holds no buffer the size of its files, which the heap counts as
   * external memory and starts collecting for.
   */
  texts: ReadonlyMap<string, string>;
}

/** Reads the files and starts digesting them; undefined if one is unreadable (the reload that follows names it). */
export async function readFiles(files: readonly string[]): Promise<FileSnapshot | undefined> {
  const parts: Promise<ArrayBuffer>[] = [];
  const texts = new Map<string, string>();
  for (const file of files) {
    let buf: Buffer;
    try {
      buf = await fs.promises.readFile(file);
    } catch {
      return undefined;
    }
    // The job takes a copy of the bytes now: `buf` is garbage once decoded.
    parts.push(webcrypto.subtle.digest('SHA-256', buf));
    texts.set(file, buf.toString('utf8'));
  }
  const digest = Promise.all(parts).then(
    (ds) => ds.map((d) => Buffer.from(d).toString('hex')).join(' '),
    () => undefined,
  );
  return { digest, texts };
}
