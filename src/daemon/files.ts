// Refuses rule, ipset and configuration files that someone other than root (or the daemon's own user) could change,
// as sshd's StrictModes does for authorized_keys. nfqwall runs as root and decides what traffic passes: whoever can
// write its rule files, or rename them away inside a directory they can write, decides that instead.
//
// A file must be owned by root or the daemon's user and not writable by group or others. Every directory from the
// file's up to / must be owned the same way and not writable by group or others, except a sticky directory (/tmp,
// 1777): there others may create their own names but cannot rename or remove a file they do not own. Both the path
// as given and the path with symbolic links resolved are checked, so a link cannot lead around the rule.
import fs from 'node:fs';
import path from 'node:path';

export class UnsafeFileError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(problems.join('\n'));
    this.name = 'UnsafeFileError';
  }
}

export interface SafetyOptions {
  /** The uids allowed to own the files and their directories (default root and the effective uid). */
  owners?: readonly number[];
  /** How a path is examined without following a final link (default fs.lstatSync). */
  lstat?: (p: string) => fs.Stats;
}

function defaultOwners(): number[] {
  const euid = typeof process.geteuid === 'function' ? process.geteuid() : 0;
  return euid === 0 ? [0] : [0, euid];
}

const octal = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, '0');

/** The problem with one path (a file when `isDir` is false), or undefined when it is safe. */
function checkOne(p: string, st: fs.Stats, isDir: boolean, owners: readonly number[], file: string): string | undefined {
  const what = isDir ? `directory ${p} (above ${file})` : p;
  if (!owners.includes(st.uid)) {
    const who = owners.length === 1 ? 'root' : `root or uid ${owners.filter((u) => u !== 0).join(', ')}`;
    return `${what}: owned by uid ${st.uid}, not ${who}; fix: chown root ${p}`;
  }
  if ((st.mode & 0o022) === 0) return undefined;
  if (isDir && (st.mode & 0o1000) !== 0) return undefined;
  const by = (st.mode & 0o020) !== 0 && (st.mode & 0o002) !== 0 ? 'group and others' : (st.mode & 0o020) !== 0 ? 'group' : 'others';
  return `${what}: writable by ${by} (mode ${octal(st.mode)}); fix: chmod go-w ${p}`;
}

/** Every directory from `dir` up to the root, `dir` first. */
function ancestors(dir: string): string[] {
  const out: string[] = [];
  for (let d = dir; ; d = path.dirname(d)) {
    out.push(d);
    if (path.dirname(d) === d) return out;
  }
}

/** The problems of one file (empty when it is safe to trust). */
export function fileProblems(file: string, opts: SafetyOptions = {}): string[] {
  const owners = opts.owners ?? defaultOwners();
  const lstat = opts.lstat ?? ((p: string) => fs.lstatSync(p));
  const abs = path.resolve(file);
  const problems: string[] = [];
  const seen = new Set<string>();
  const check = (p: string, isDir: boolean): void => {
    if (seen.has(p)) return;
    seen.add(p);
    let st: fs.Stats;
    try {
      st = lstat(p);
    } catch {
      return; // A missing or unreadable file is reported by whoever reads it, with its own message.
    }
    // A symbolic link's own mode means nothing; its directory (checked) and its target (checked below) do.
    if (st.isSymbolicLink()) return;
    const problem = checkOne(p, st, isDir, owners, abs);
    if (problem !== undefined) problems.push(problem);
  };
  const paths = [abs];
  try {
    const real = fs.realpathSync(abs);
    if (real !== abs) paths.push(real);
  } catch {
    // Missing: the reader reports it.
  }
  for (const p of paths) {
    check(p, false);
    for (const d of ancestors(path.dirname(p))) check(d, true);
  }
  return problems;
}

/**
 * Throws an UnsafeFileError naming the first unsafe file and every problem with it (and how to fix each). Called
 * before the files are read, at start and at every reload.
 */
export function checkFileSafety(files: readonly string[], opts: SafetyOptions = {}): void {
  for (const f of files) {
    const problems = fileProblems(f, opts);
    if (problems.length > 0) {
      throw new UnsafeFileError(f, [`refusing to trust ${f}: someone other than root could change it`, ...problems]);
    }
  }
}
