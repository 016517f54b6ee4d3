// What the rule and ipset files hold, as one digest: a file watcher's event that leaves them as they were loaded (a
// file rewritten with the same bytes, or the event of a write a reload already read) needs no reload. Timestamps
// cannot tell: the kernel stamps writes at its tick, so two writes of the same size within a few milliseconds look
// alike. Read in chunks, so a 150 MB file does not hold the event loop.
import { createHash } from 'node:crypto';
import fs from 'node:fs';

/** A digest of the files' bytes, equal for two calls only when every file holds the same; undefined if one is unreadable. */
export async function digestFiles(files: readonly string[]): Promise<string | undefined> {
  const parts: string[] = [];
  for (const file of files) {
    const hash = createHash('sha256');
    try {
      for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
    } catch {
      return undefined; // the reload that follows names the file and the error
    }
    parts.push(hash.digest('hex'));
  }
  return parts.join(' ');
}
