// Addresses as iptables reads and prints them: -s/-d take address[/mask] with a prefix length or a dotted (v4) or
// full (v6) mask; iptables-save prints `/N` for contiguous masks and the mask itself otherwise (libxtables
// xtables_ipmask_to_numeric / xtables_ip6mask_to_numeric). Hostnames are not resolved: a rule file must not depend on
// DNS at load time, and the result would differ from host to host.
import type { Family, IpNet } from './model';

/** Thrown with a reason only; callers add the location. */
export class AddrError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AddrError';
  }
}

/**
 * The address as a 32-bit number, or -1 when `s` is not one: inet_aton-strict form as iptables'
 * xtables_numeric_to_ipaddr, one to four decimal parts of up to three digits, each at most 255, the missing ones zero
 * ("10" is 10.0.0.0). Scanned in place, allocating nothing: this runs for every -s/-d.
 */
function scanV4(s: string): number {
  const n = s.length;
  if (n === 0) return -1;
  let parts = 0;
  let v = 0;
  let digits = 0;
  let value = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? s.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || v > 255 || parts === 4) return -1;
      if (parts === 3 && i !== n) return -1;
      value += v * 2 ** (24 - 8 * parts);
      parts++;
      if (i === n) return value;
      v = 0;
      digits = 0;
      continue;
    }
    const d = c - 48;
    if (d < 0 || d > 9 || digits === 3) return -1;
    v = v * 10 + d;
    digits++;
  }
  return value;
}

/**
 * IPv4 addresses are cut from shared slabs: a ruleset keeps tens of thousands of them, and a Uint8Array of its own
 * costs an ArrayBuffer and its bytes besides the view (three heap objects for four bytes, all copied by the GC).
 * Views of one slab are independent 4-byte arrays; nothing reads an address through its `.buffer`.
 */
const SLAB_BYTES = 4096;
let slab = new ArrayBuffer(SLAB_BYTES);
let slabUsed = 0;

function v4Bytes(value: number): Uint8Array {
  if (slabUsed === SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = new Uint8Array(slab, slabUsed, 4);
  slabUsed += 4;
  out[0] = value >>> 24;
  out[1] = (value >>> 16) & 0xff;
  out[2] = (value >>> 8) & 0xff;
  out[3] = value & 0xff;
  return out;
}

function parseV4(s: string): Uint8Array | undefined {
  const v = scanV4(s);
  return v < 0 ? undefined : v4Bytes(v);
}

function parseV6(s: string): Uint8Array | undefined {
  if (s.length === 0 || s.length > 45) return undefined;
  let head = s;
  let tail = '';
  const dbl = s.indexOf('::');
  if (dbl >= 0) {
    if (s.indexOf('::', dbl + 1) >= 0) return undefined;
    head = s.slice(0, dbl);
    tail = s.slice(dbl + 2);
  }
  const words: number[] = [];
  const parseGroups = (g: string, out: number[], allowV4Tail: boolean): boolean => {
    if (g === '') return true;
    const items = g.split(':');
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      if (allowV4Tail && i === items.length - 1 && it.includes('.')) {
        const v4 = it.split('.').length === 4 ? scanV4(it) : -1;
        if (v4 < 0) return false;
        out.push(v4 >>> 16, v4 & 0xffff);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(it)) return false;
      out.push(parseInt(it, 16));
    }
    return true;
  };
  const hw: number[] = [];
  const tw: number[] = [];
  if (!parseGroups(head, hw, dbl < 0)) return undefined;
  if (!parseGroups(tail, tw, true)) return undefined;
  if (dbl >= 0) {
    if (hw.length + tw.length > 7) return undefined;
    words.push(...hw);
    for (let i = hw.length + tw.length; i < 8; i++) words.push(0);
    words.push(...tw);
  } else {
    if (hw.length !== 8) return undefined;
    words.push(...hw);
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i] >> 8;
    out[2 * i + 1] = words[i] & 0xff;
  }
  return out;
}

/** Parse a numeric address of the given family, or undefined. */
export function parseIpAddr(s: string, family: Family): Uint8Array | undefined {
  return family === 4 ? parseV4(s) : parseV6(s);
}

/** Which family a word (address[/mask]) looks like, or undefined when neither. */
export function guessFamily(word: string): Family | undefined {
  const slash = word.indexOf('/');
  const a = slash >= 0 ? word.slice(0, slash) : word;
  if (a.includes(':')) return parseV6(a) ? 6 : undefined;
  return scanV4(a) >= 0 ? 4 : undefined;
}

const sharedMasks = new Map<number, Uint8Array>();

/**
 * The mask of a prefix length. Shared between all nets with the same prefix (a ruleset has 100,000 of them and few
 * distinct masks): treat IpNet masks as read-only.
 */
export function prefixMask(len: number, bytes: number): Uint8Array {
  const key = bytes * 256 + len;
  let m = sharedMasks.get(key);
  if (!m) {
    m = makePrefixMask(len, bytes);
    sharedMasks.set(key, m);
  }
  return m;
}

function makePrefixMask(len: number, bytes: number): Uint8Array {
  const m = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) {
    const bits = Math.max(0, Math.min(8, len - i * 8));
    m[i] = bits === 0 ? 0 : (0xff << (8 - bits)) & 0xff;
  }
  return m;
}

/** Prefix length of a contiguous mask, or -1. */
export function maskPrefixLength(mask: Uint8Array): number {
  let n = 0;
  let i = 0;
  for (; i < mask.length && mask[i] === 0xff; i++) n += 8;
  if (i < mask.length) {
    const b = mask[i];
    let bits = 0;
    while (bits < 8 && b & (0x80 >> bits)) bits++;
    if (((0xff << (8 - bits)) & 0xff) !== b) return -1;
    n += bits;
    for (i++; i < mask.length; i++) if (mask[i] !== 0) return -1;
  }
  return n;
}

/**
 * Parse `address[/mask]` for -s/-d (and for extensions taking networks). Throws AddrError with a reason.
 * The address is masked, as the kernel stores it.
 */
export function parseIpNet(word: string, family: Family): IpNet {
  const bytes = family === 4 ? 4 : 16;
  const slash = word.indexOf('/');
  const a = slash >= 0 ? word.slice(0, slash) : word;
  const m = slash >= 0 ? word.slice(slash + 1) : undefined;
  const addr = parseIpAddr(a, family);
  if (!addr) {
    const other = guessFamily(a);
    if (other && other !== family) throw new AddrError(`"${a}" is an IPv${other} address, in an IPv${family} rule`);
    if (/[A-Za-z]/.test(a) && /^[A-Za-z0-9.-]+$/.test(a))
      throw new AddrError(`host/network "${a}" not found: hostnames are not resolved, write a numeric address`);
    throw new AddrError(`invalid IPv${family} address "${a}"`);
  }
  let mask: Uint8Array;
  if (m === undefined) mask = prefixMask(bytes * 8, bytes);
  else if (/^[0-9]{1,3}$/.test(m)) {
    const len = Number(m);
    if (len > bytes * 8) throw new AddrError(`invalid mask "${m}" specified`);
    mask = prefixMask(len, bytes);
  } else {
    const mm = parseIpAddr(m, family);
    // iptables accepts dotted masks for v4 only; ip6tables accepts a full address as mask too.
    if (!mm || (family === 4 && m.split('.').length !== 4)) throw new AddrError(`invalid mask "${m}" specified`);
    mask = mm;
  }
  // The address is our own fresh array: mask it in place.
  for (let i = 0; i < bytes; i++) addr[i] &= mask[i];
  return { family, addr, mask };
}

function formatV4(a: Uint8Array): string {
  return `${a[0]}.${a[1]}.${a[2]}.${a[3]}`;
}

/** IPv6 text as inet_ntop prints it (RFC 5952 compression; glibc's ::ffff:a.b.c.d and ::a.b.c.d forms). */
function formatV6(a: Uint8Array): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((a[2 * i] << 8) | a[2 * i + 1]);
  // glibc inet_ntop6: the longest run of >= 2 zero words is compressed (first one on ties).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) bestStart = -1;
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (bestStart >= 0 && i >= bestStart && i < bestStart + bestLen) {
      if (i === bestStart) s += ':';
      continue;
    }
    if (i !== 0) s += ':';
    // Embedded IPv4: ::a.b.c.d (compat, not ::1/::) or ::ffff:a.b.c.d (mapped).
    if (i === 6 && bestStart === 0 && (bestLen === 6 || (bestLen === 5 && w[5] === 0xffff))) {
      s += formatV4(a.subarray(12));
      break;
    }
    s += w[i].toString(16);
  }
  if (bestStart >= 0 && bestStart + bestLen === 8) s += ':';
  return s;
}

export function formatIpAddr(addr: Uint8Array): string {
  return addr.length === 4 ? formatV4(addr) : formatV6(addr);
}

/** `addr/len` for contiguous masks, `addr/mask` otherwise: as iptables-save prints -s/-d. */
export function formatIpNet(net: IpNet): string {
  const len = maskPrefixLength(net.mask);
  const a = formatIpAddr(net.addr);
  if (len >= 0) return `${a}/${len}`;
  return `${a}/${formatIpAddr(net.mask)}`;
}

/** Whether `addr` lies in `net`. */
export function inNet(addr: Uint8Array, net: IpNet): boolean {
  if (addr.length !== net.addr.length) return false;
  for (let i = 0; i < addr.length; i++) if ((addr[i] & net.mask[i]) !== net.addr[i]) return false;
  return true;
}
