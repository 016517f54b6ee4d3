// Small helpers shared by the part-B match modules: numbers as libxtables reads them, and located errors.
import { RuleError, type OptionUse } from '../types';
import type { SourceLocation } from '../../rules/model';

export function fail(use: OptionUse, message: string): never {
  throw new RuleError(message, use.loc);
}

/** The location of an option's argument (falls back to the option word). */
export function argLoc(use: OptionUse, i = 0): SourceLocation {
  return use.argLocs[i] ?? use.loc;
}

export function failArg(use: OptionUse, message: string, i = 0): never {
  throw new RuleError(message, argLoc(use, i));
}

/**
 * strtoul(s, &end, 0) restricted to the whole word, as xtables_strtoui does: decimal, 0x hex or 0 octal.
 * Undefined when the word is not a number or exceeds max.
 */
export function parseUintWord(word: string, max = 0xffffffff): number | undefined {
  const m = /^\s*\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(word);
  if (!m) return undefined;
  const text = m[1]!;
  let v: number;
  if (/^0[xX]/.test(text)) v = parseInt(text.slice(2), 16);
  else if (text.length > 1 && text.startsWith('0')) v = parseInt(text.slice(1), 8);
  else v = parseInt(text, 10);
  if (!Number.isFinite(v) || v > max) return undefined;
  return v;
}

/** An XTTYPE_UINT* option value with the message libxtables prints for out-of-range values. */
export function uintArg(use: OptionUse, min: number, max: number, ext: string): number {
  const v = parseUintWord(use.args[0] ?? '', max);
  if (v === undefined || v < min) {
    failArg(use, `${ext}: bad value for option "--${use.name}", or out of range (${min}-${max}).`);
  }
  return v;
}

/** `a`, `a:b`, `:b`, `a:` (XTTYPE_UINT*RC); open ends are 0 and max. */
export function rangeArg(use: OptionUse, max: number, ext: string, sep = ':'): [number, number] {
  const word = use.args[0] ?? '';
  const bad = (): never => failArg(use, `${ext}: bad value for option "--${use.name}", or out of range (0-${max}).`);
  const i = word.indexOf(sep);
  if (i < 0) {
    const v = parseUintWord(word, max);
    if (v === undefined) bad();
    return [v!, v!];
  }
  const a = word.slice(0, i);
  const b = word.slice(i + 1);
  const lo = a === '' ? 0 : parseUintWord(a, max);
  const hi = b === '' ? max : parseUintWord(b, max);
  if (lo === undefined || hi === undefined) bad();
  return [lo!, hi!];
}

/**
 * Options that exclude each other (xtables `.excl`). libxtables checks after the whole rule is read, walking its
 * option table in order, so `names` must be in the extension's table order; the first one present is named first.
 */
export function exclusive(uses: OptionUse[], names: readonly string[], ext: string): void {
  const present = names.map((n) => find(uses, n)).filter((u): u is OptionUse => u !== undefined);
  if (present.length >= 2) {
    fail(present[0]!, `${ext}: option "--${present[0]!.name}" cannot be used together with "--${present[1]!.name}".`);
  }
}

/** xtables `.also`: `use` requires `other`. */
export function requires(uses: OptionUse[], name: string, other: string, ext: string): void {
  const u = find(uses, name);
  if (u && !find(uses, other)) fail(u, `${ext}: option "--${name}" also requires "--${other}".`);
}

export function find(uses: OptionUse[], name: string): OptionUse | undefined {
  return uses.find((u) => u.name === name);
}

export function hex2(n: number): string {
  return `0x${n.toString(16).padStart(2, '0')}`;
}

export function readU16(data: Uint8Array, off: number): number {
  return ((data[off]! << 8) | data[off + 1]!) >>> 0;
}

export function readU32(data: Uint8Array, off: number): number {
  return ((data[off]! << 24) | (data[off + 1]! << 16) | (data[off + 2]! << 8) | data[off + 3]!) >>> 0;
}
