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

/**
 * The words of a line as two parallel arrays, reused from line to line: the parser reads 150,000 lines of a large
 * file, and an object per word is most of what it would otherwise allocate.
 */
export class LexBuf {
  texts: string[] = [];
  cols: number[] = [];
  n = 0;
}

/**
 * Lex the line `src[from, to)` into `buf` (replacing what it held), columns counted from `from`; throws LexError as
 * lexLine does. The parser hands it the whole file, so no line is ever copied out of it.
 */
export function lexInto(src: string, from: number, to: number, buf: LexBuf): void {
  const texts = buf.texts;
  const cols = buf.cols;
  let count = 0;
  buf.n = 0;
  const n = to;
  const base = from - 1;
  let i = from;
  while (i < n) {
    let c = src.charCodeAt(i);
    if (c === 32 || c === 9 || c === 10 || c === 13) {
      i++;
      continue;
    }
    const start = i;
    // Fast path: a word without quotes is one slice of the text.
    while (i < n) {
      c = src.charCodeAt(i);
      if (c === 32 || c === 9 || c === 10 || c === 13 || c === 34) break;
      i++;
    }
    if (i >= n || c !== 34) {
      if (i - start > MAX_WORD) throw new LexError('Parameter too long!', start - base);
      texts[count] = src.slice(start, i);
      cols[count] = start - base;
      count++;
      continue;
    }
    // A quote: collect the unquoted head, then the quoted stretch up to its closing quote, which ends the word.
    let buf2 = src.slice(start, i);
    i++;
    let closed = false;
    // Runs without `\` or `"` are appended as one slice: per-character += builds a rope that is flattened later.
    let run = i;
    while (i < n) {
      c = src.charCodeAt(i);
      if (c !== 92 /* \ */ && c !== 34) {
        i++;
        continue;
      }
      if (i > run) buf2 += src.slice(run, i);
      if (c === 34) {
        closed = true;
        i++;
        break;
      }
      if (i + 1 < n) buf2 += src[i + 1];
      i += 2;
      run = i;
    }
    if (!closed && run < n) buf2 += src.slice(run, n);
    if (buf2.length > MAX_WORD) throw new LexError('Parameter too long!', start - base);
    // iptables adds the word at the closing quote even when empty; an unterminated empty one is dropped.
    if (closed || buf2.length > 0) {
      texts[count] = buf2;
      cols[count] = start - base;
      count++;
    }
  }
  buf.n = count;
}

export function lexLine(line: string): Word[] {
  const buf = new LexBuf();
  lexInto(line, 0, line.length, buf);
  const words: Word[] = new Array<Word>(buf.n);
  for (let k = 0; k < buf.n; k++) words[k] = { text: buf.texts[k], col: buf.cols[k] };
  return words;
}
