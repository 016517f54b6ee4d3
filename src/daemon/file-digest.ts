// What the rule and ipset files hold, as one digest: a file watcher's event that leaves them as they were loaded (a
// file rewritten with the same bytes, or the event of a write a reload already read) needs no reload. Timestamps
// cannot tell: the kernel stamps writes at its tick, so two writes of the same size within a few milliseconds look
// alike. Read asynchronously a chunk at a time, each hashed on the thread pool (WebCrypto) and decoded, so neither a
// 150 MB file nor its hashing holds the event loop. The last file's last chunk is hashed only when the digest is asked
// for (or before the buffer is read into again): a reload asked for (not a file watcher's) puts the rules in force
// first.
import { webcrypto } from 'node:crypto';
import fs from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

/** What a reload reads of its files: their text, and one digest of their bytes. */
export interface FileSnapshot {
  /** Equal for two snapshots only when every file held the same bytes; undefined if hashing failed. Never rejects. */
  digest(): Promise<string | undefined>;
  /**
   * By file name, decoded as UTF-8: the reload parses these, not a second read of the files (which could hold others
   * by then).
   */
  texts: ReadonlyMap<string, string>;
}

/**
 * Bytes read at a time. The heap counts a buffer's bytes as external memory, and a marking cycle starts once 64 MB
 * of it come since the last: read whole, a 150 MB file (100,000 services) started one on a heap of gigabytes before
 * the reload had begun. A 10,000-service file (15 MB) is one chunk, whose text is used as it is decoded.
 */
export const READ_CHUNK = 32 << 20;

/**
 * The buffer every read goes into, kept from one reload to the next: a new one per reload (15 MB at 10,000 services)
 * started a marking cycle every third or fourth reload by the 64 MB rule above. Grows to the largest chunk read.
 */
let buffer = Buffer.alloc(0);
/** Starts hashing the chunk a snapshot still holds in `buffer`, before anything is read into it again. */
let release: (() => void) | undefined;

/** Reads the files and starts digesting them; undefined if one is unreadable (the reload that follows names it). */
export async function readFiles(files: readonly string[]): Promise<FileSnapshot | undefined> {
  const digests: (() => Promise<string | undefined>)[] = [];
  const texts = new Map<string, string>();
  for (const file of files) {
    const chunks: (() => Promise<ArrayBuffer>)[] = [];
    const pieces: string[] = [];
    const decoder = new StringDecoder('utf8');
    try {
      const fh = await fs.promises.open(file, 'r');
      try {
        // No larger than the file (and a byte to see its end): the heap counts all of it. Chunks are filled whole,
        // so the same bytes are cut the same way.
        const size = Math.min(READ_CHUNK, (await fh.stat()).size + 1);
        for (let end = false; !end; ) {
          release?.();
          release = undefined;
          if (buffer.length < size) buffer = Buffer.allocUnsafe(size);
          const buf = buffer;
          let n = 0;
          while (n < size) {
            const { bytesRead } = await fh.read(buf, n, size - n, null);
            if (bytesRead === 0) {
              end = true;
              break;
            }
            n += bytesRead;
          }
          if (n === 0) break;
          const chunk = buf.subarray(0, n);
          pieces.push(decoder.write(chunk));
          // Hashed when asked, or when the next chunk is read into the buffer: only the last chunk read waits.
          let hashed: Promise<ArrayBuffer> | undefined;
          const hash = (): Promise<ArrayBuffer> => (hashed ??= sha256(chunk));
          chunks.push(hash);
          release = hash;
        }
      } finally {
        await fh.close();
      }
    } catch {
      return undefined;
    }
    pieces.push(decoder.end());
    texts.set(file, pieces.length === 2 && pieces[1] === '' ? pieces[0] : pieces.join(''));
    digests.push(() => fileDigest(chunks));
  }
  let digest: Promise<string | undefined> | undefined;
  return {
    digest: () => (digest ??= Promise.all(digests.map((d) => d())).then((ds) => (ds.includes(undefined) ? undefined : ds.join(' ')))),
    texts,
  };
}

/**
 * A chunk's SHA-256. The job copies the chunk before this returns, so the buffer may be read into at once. Its failure
 * is observed here: a snapshot whose digest is never asked for leaves the promise unawaited.
 */
function sha256(chunk: Buffer): Promise<ArrayBuffer> {
  let p: Promise<ArrayBuffer>;
  try {
    p = webcrypto.subtle.digest('SHA-256', chunk);
  } catch (err) {
    p = Promise.reject(err);
  }
  p.catch(() => undefined);
  return p;
}

/** A file's digest: the SHA-256 of its chunks' SHA-256s, in order, in hex; undefined if hashing failed (never rejects). */
async function fileDigest(chunks: (() => Promise<ArrayBuffer>)[]): Promise<string | undefined> {
  try {
    const ds = await Promise.all(chunks.map((c) => c()));
    const d = await webcrypto.subtle.digest('SHA-256', Buffer.concat(ds.map((x) => Buffer.from(x))));
    return Buffer.from(d).toString('hex');
  } catch {
    return undefined;
  }
}
