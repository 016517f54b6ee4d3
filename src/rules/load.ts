// Reading a rule file from disk into a Ruleset.
import fs from 'node:fs';
import { RuleError } from '../extensions/types';
import { RuleErrors } from './errors';
import type { Family, Ruleset } from './model';
import { ParseCache } from './line-cache';
import { parseRulesetSteps } from './parse';
import { runSync, type Steps } from '../steps';

export interface LoadOptions {
  /**
   * Keep the `[packets:bytes]` counters written in the file, as `iptables-restore --counters` does. Without it the
   * counters are read (and must be well formed) but everything starts from zero, as plain `iptables-restore` does.
   */
  counters?: boolean;
  /** Unchanged chains take the rules of the file's last parse (ParseOptions.shareChains): for a reload. */
  shareChains?: boolean;
  /** The file's text, read already (a reload's, src/daemon/file-digest.ts): not read again. */
  text?: string;
}

/**
 * The previous parses of the files read last (src/rules/line-cache.ts), by path: a reload of a file with a few lines
 * changed parses only those. A few files: a daemon reads one or two, and a process reading many keeps no more.
 */
const caches = new Map<string, ParseCache>();
const MAX_CACHED_FILES = 4;

function cacheFor(path: string): ParseCache {
  let c = caches.get(path);
  if (c !== undefined) caches.delete(path);
  else c = new ParseCache();
  caches.set(path, c);
  if (caches.size > MAX_CACHED_FILES) caches.delete(caches.keys().next().value as string);
  return c;
}

/** What the last parse of `path` reused from the one before (for the reload log and the benchmark). */
export function lastParseStats(path: string): ParseCache['stats'] | undefined {
  return caches.get(path)?.stats;
}

/** Parse and validate a rule file. `family` absent: inferred from the file (IPv4 when nothing tells). */
export function loadRuleFile(path: string, family?: Family, opts: LoadOptions = {}): Ruleset {
  return runSync(loadRuleFileSteps(path, family, opts));
}

/** loadRuleFile in steps (src/steps.ts), for the daemon's reload. */
export function* loadRuleFileSteps(path: string, family?: Family, opts: LoadOptions = {}): Steps<Ruleset> {
  let text: string;
  try {
    text = opts.text ?? (yield* readFileSteps(path));
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new RuleErrors([new RuleError(`cannot read rule file: ${reason}`, { file: path, line: 0, column: 0 })]);
  }
  const cache = cacheFor(path);
  const zero = opts.counters !== true;
  const shareChains = opts.shareChains;
  return yield* parseRulesetSteps(text, path, family ? { family, cache, zeroCounters: zero, shareChains } : { cache, zeroCounters: zero, shareChains });
}

/** Bytes read per step: a 150 MB file (a million rules) read in one go stops the daemon for a tenth of a second. */
const READ_CHUNK = 4 << 20;

/** fs.readFileSync(path, 'utf8') in steps (src/steps.ts) of READ_CHUNK bytes. */
function* readFileSteps(path: string): Steps<string> {
  const fd = fs.openSync(path, 'r');
  try {
    // One buffer the file's size (and a byte more, to see its end), read into in steps: no chunks copied together.
    let buf = Buffer.allocUnsafe(fs.fstatSync(fd).size + 1);
    let total = 0;
    for (;;) {
      if (total === buf.length) {
        // The file grew while it was read.
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, total);
        buf = bigger;
      }
      const n = fs.readSync(fd, buf, total, Math.min(READ_CHUNK, buf.length - total), null);
      if (n === 0) break;
      total += n;
      yield;
    }
    return buf.toString('utf8', 0, total);
  } finally {
    fs.closeSync(fd);
  }
}
