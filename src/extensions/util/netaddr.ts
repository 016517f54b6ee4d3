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

export function parseAddrMask(use: OptionUse, family: Family): AddrMask {
  const word = use.args[0] ?? '';
  const bytes = family === 4 ? 4 : 16;
  const slash = word.indexOf('/');
  const a = slash >= 0 ? word.slice(0, slash) : word;
  const m = slash >= 0 ? word.slice(slash + 1) : undefined;
  const addr = parseIpAddr(a, family);
  if (!addr) {
    const other = family === 4 ? parseIpAddr(a, 6) : parseIpAddr(a, 4);
    if (other) badArg(use, `"${a}" is an IPv${family === 4 ? 6 : 4} address, in an IPv${family} rule`);
    badArg(use, `host/network \`${a}' not found (hostnames are not resolved; write a numeric address)`);
  }
  let mask: Uint8Array;
  if (m === undefined) mask = prefixMask(bytes * 8, bytes);
  else if (/^[0-9]{1,3}$/.test(m) && Number(m) <= bytes * 8) mask = prefixMask(Number(m), bytes);
  else {
    const mm = parseIpAddr(m, family);
    if (!mm || (family === 4 && m.split('.').length !== 4)) badArg(use, new AddrError(`invalid mask \`${m}' specified`).message);
    mask = mm;
  }
  return { addr, mask };
}

/**
 * As libxt_conntrack's conntrack_dump_addr prints with iptables 1.8.9: the address as given (unmasked), `/N` for a
 * contiguous mask shorter than the address, nothing for a full mask — and nothing for a non-contiguous one either
 * (checked against the kernel: `--ctreplsrc 1.2.3.4/255.0.255.0` saves as `--ctreplsrc 1.2.3.4`).
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
