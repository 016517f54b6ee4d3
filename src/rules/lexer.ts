// Splitting a rule line into words as iptables-restore does (iptables/xshared.c add_param_to_argv, v1.8.9):
// blanks separate words; `"` opens a quoted stretch (which may start mid-word) inside which `\` escapes the next
// character; the closing `"` ends the word, so `"a"b` is two words. Outside quotes a backslash is an ordinary
// character. An unterminated quote runs to the end of the line (iptables 1.8.9 accepts it).

export interface Word {
  text: string;
  /** 1-based column of the word's first character (its opening quote, if any). */
  col: number;
}

/** iptables' fixed parameter buffer. */
export const MAX_WORD = 1023;

export class LexError extends Error {
  constructor(
    message: string,
    readonly col: number,
  ) {
    super(message);
    this.name = 'LexError';
  }
}

export function lexLine(line: string): Word[] {
  const words: Word[] = [];
  const n = line.length;
  let i = 0;
  while (i < n) {
    let c = line.charCodeAt(i);
    if (c === 32 || c === 9 || c === 10 || c === 13) {
      i++;
      continue;
    }
    const start = i;
    // Fast path: a word without quotes is one slice of the line.
    while (i < n) {
      c = line.charCodeAt(i);
      if (c === 32 || c === 9 || c === 10 || c === 13 || c === 34) break;
      i++;
    }
    if (i >= n || c !== 34) {
      if (i - start > MAX_WORD) throw new LexError('Parameter too long!', start + 1);
      words.push({ text: line.slice(start, i), col: start + 1 });
      continue;
    }
    // A quote: collect the unquoted head, then the quoted stretch up to its closing quote, which ends the word.
    let buf = line.slice(start, i);
    i++;
    let closed = false;
    // Runs without `\` or `"` are appended as one slice: per-character += builds a rope that is flattened later.
    let run = i;
    while (i < n) {
      c = line.charCodeAt(i);
      if (c !== 92 /* \ */ && c !== 34) {
        i++;
        continue;
      }
      if (i > run) buf += line.slice(run, i);
      if (c === 34) {
        closed = true;
        i++;
        break;
      }
      if (i + 1 < n) buf += line[i + 1];
      i += 2;
      run = i;
    }
    if (!closed && run < n) buf += line.slice(run, n);
    if (buf.length > MAX_WORD) throw new LexError('Parameter too long!', start + 1);
    // iptables adds the word at the closing quote even when empty; an unterminated empty one is dropped.
    if (closed || buf.length > 0) words.push({ text: buf, col: start + 1 });
  }
  return words;
}
