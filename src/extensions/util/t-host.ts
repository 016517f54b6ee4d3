// Addresses given to XTTYPE_HOST / XTTYPE_HOSTMASK options (TPROXY --on-ip, TEE --gateway, NETMAP --to): libxtables
// resolves them with getaddrinfo, which for IPv4 takes the inet_aton forms (`1.2.3` is 1.2.0.3, `10.1` is 10.0.0.1,
// parts in decimal, octal or hex). Names are not resolved: a rule file must not depend on DNS.
import { parseIpAddr } from '../../rules/addr';
import type { Family } from '../../rules/model';

function part(s: string): number | undefined {
  if (/^0[xX][0-9a-fA-F]+$/.test(s)) return parseInt(s.slice(2), 16);
  if (/^0[0-7]*$/.test(s)) return s.length > 1 ? parseInt(s.slice(1), 8) : 0;
  if (/^[1-9][0-9]*$/.test(s)) return Number(s);
  return undefined;
}

/** inet_aton: 1 to 4 parts, the last filling the remaining bytes. */
export function inetAton(s: string): Uint8Array | undefined {
  const parts = s.split('.');
  if (parts.length > 4) return undefined;
  const nums = parts.map(part);
  if (nums.some((n) => n === undefined)) return undefined;
  const ns = nums as number[];
  const lastBytes = 4 - (ns.length - 1);
  for (let i = 0; i < ns.length - 1; i++) if (ns[i] > 255) return undefined;
  const last = ns[ns.length - 1];
  if (last >= 2 ** (8 * lastBytes)) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < ns.length - 1; i++) out[i] = ns[i];
  for (let k = 0; k < lastBytes; k++) out[3 - k] = Math.floor(last / 2 ** (8 * k)) & 0xff;
  return out;
}

export function parseHostAddr(s: string, family: Family): Uint8Array | undefined {
  return family === 4 ? inetAton(s) : parseIpAddr(s, 6);
}
