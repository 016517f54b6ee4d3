// `address[/mask]` for extension options that keep the address unmasked and compare under the mask (conntrack's
// --ctorigsrc..., ipvs' --vaddr), and their printing as those modules' save functions do.
import { AddrError, formatIpAddr, maskPrefixLength, parseIpAddr, prefixMask } from '../../rules/addr';
import type { Family } from '../../rules/model';
import type { OptionUse } from '../types';
import { badArg } from './opts';

export interface AddrMask {
  addr: Uint8Array;
  mask: Uint8Array;
}

/** strtoul with base 0 over the whole word (0x hex, 0 octal, else decimal), or undefined. */
function strtoulWhole(w: string): number | undefined {
  const m = /^(?:0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))$/.exec(w);
  if (!m) return undefined;
  const v = m[1] !== undefined ? parseInt(m[1], 16) : m[2] !== undefined ? parseInt(m[2], 8) : Number(m[3]);
  return Number.isSafeInteger(v) ? v : undefined;
}

/**
 * An IPv4 address as glibc's inet_aton reads it, which is what getaddrinfo gives libxtables' XTTYPE_HOST: one to
 * four parts, each decimal, 0x hex or 0 octal, the last filling the remaining bytes ("1" is 0.0.0.1, "10.1" is
 * 10.0.0.1, "1.2.3" is 1.2.0.3).
 */
export function parseInetAton(w: string): Uint8Array | undefined {
  const parts = w.split('.');
  if (parts.length > 4) return undefined;
  const vals: number[] = [];
  for (const p of parts) {
    const v = strtoulWhole(p);
    if (v === undefined) return undefined;
    vals.push(v);
  }
  const last = vals[vals.length - 1];
  const lastBits = 8 * (5 - vals.length);
  if (vals.slice(0, -1).some((v) => v > 255) || last >= 2 ** lastBits) return undefined;
  const n = vals.slice(0, -1).reduce((acc, v, i) => acc + v * 2 ** (24 - 8 * i), 0) + last;
  return Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/**
 * XTTYPE_HOSTMASK (conntrack --ctorigsrc..., ipvs --vaddr, NETMAP --to): the host through getaddrinfo (inet_aton
 * forms for IPv4; names are not resolved here), the mask as a prefix length when strtoul takes it whole and it fits
 * ("/0x10" is /16), else as a dotted mask whose prefix length is kept: one with holes, or "/33" (the address
 * 0.0.0.33), becomes the full mask, as libxtables 1.8.9 reads them.
 */
export function parseAddrMask(use: OptionUse, family: Family): AddrMask {
  const word = use.args[0] ?? '';
  const bytes = family === 4 ? 4 : 16;
  const slash = word.indexOf('/');
  const a = slash >= 0 ? word.slice(0, slash) : word;
  const m = slash >= 0 ? word.slice(slash + 1) : undefined;
  const numeric = (x: string) => (family === 4 ? parseInetAton(x) : parseIpAddr(x, 6));
  const addr = numeric(a);
  if (!addr) {
    const other = family === 4 ? parseIpAddr(a, 6) : parseInetAton(a);
    if (other) badArg(use, `"${a}" is an IPv${family === 4 ? 6 : 4} address, in an IPv${family} rule`);
    badArg(use, `host/network \`${a}' not found (hostnames are not resolved; write a numeric address)`);
  }
  let plen = m === undefined ? bytes * 8 : strtoulWhole(m);
  if (plen === undefined || plen > bytes * 8) {
    // xtopt_parse_plen falls back to xtopt_parse_mask, which keeps only the mask's prefix length; a mask with holes
    // has none (-1 in a uint8_t) and xtopt_parse_plenmask then builds the full mask from it.
    const mm = numeric(m ?? '');
    if (!mm) badArg(use, new AddrError(`invalid mask \`${m}' specified`).message);
    const len = maskPrefixLength(mm);
    plen = len < 0 ? bytes * 8 : len;
  }
  return { addr, mask: prefixMask(plen, bytes) };
}

/**
 * As libxt_conntrack's conntrack_dump_addr prints with iptables 1.8.9: the address as given (unmasked), `/N` for a
 * mask shorter than the address, nothing for a full mask (parseAddrMask never makes one with holes).
 */
export function formatAddrMask(a: AddrMask): string {
  const len = maskPrefixLength(a.mask);
  const s = formatIpAddr(a.addr);
  return len < 0 || len === a.mask.length * 8 ? s : `${s}/${len}`;
}

/** (x & mask) == (addr & mask), as the kernel compares. */
export function addrMaskMatch(x: Uint8Array, a: AddrMask): boolean {
  if (x.length !== a.addr.length) return false;
  for (let i = 0; i < x.length; i++) if ((x[i] & a.mask[i]) !== (a.addr[i] & a.mask[i])) return false;
  return true;
}
