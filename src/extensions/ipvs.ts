// -m ipvs (libxt_ipvs.c, kernel xt_ipvs.c): parsed and printed so rulesets using it load and save, but not
// enforced: the match reads the kernel's IPVS connection table (ip_vs_conn), which nfqwall cannot see.
import { formatIpAddr, maskPrefixLength } from '../rules/addr';
import { NameError, parsePort, parseProtocol } from '../rules/services';
import type { MatchExtension, OptionUse } from './types';
import { badArg, badMatch, badOpt, bang, byName } from './util/opts';
import { parseAddrMask, type AddrMask } from './util/netaddr';

interface Inv<T> {
  value: T;
  invert: boolean;
}

export interface IpvsOptions {
  /** `--ipvs` alone (every other option implies it). */
  ipvs?: { invert: boolean };
  proto?: Inv<number>;
  vaddr?: Inv<AddrMask>;
  vport?: Inv<number>;
  vdir?: 'ORIGINAL' | 'REPLY';
  vmethod?: Inv<'GATE' | 'IPIP' | 'MASQ'>;
  vportctl?: Inv<number>;
}

/** The names ipvs_mt_dump prints for IP_VS_CONN_F_{DROUTE,TUNNEL,MASQ}. */
const METHOD_PRINT = { GATE: 'ROUTE', IPIP: 'TUNNEL', MASQ: 'MASQ' } as const;

function port(use: OptionUse): number {
  try {
    return parsePort(use.args[0] ?? '');
  } catch (e) {
    if (e instanceof NameError) badArg(use, e.message);
    throw e;
  }
}

/** xtables_ipmask_to_numeric / ip6mask: nothing for a full mask, `/N` when contiguous, else the mask itself. */
function formatVaddr(a: AddrMask): string {
  const len = maskPrefixLength(a.mask);
  const s = formatIpAddr(a.addr);
  if (len === a.mask.length * 8) return s;
  return len >= 0 ? `${s}/${len}` : `${s}/${formatIpAddr(a.mask)}`;
}

const ipvs: MatchExtension<IpvsOptions> = {
  kind: 'match',
  name: 'ipvs',
  unsupported: "the ipvs match reads the kernel's IPVS connection table, which nfqwall cannot see from userspace",
  options: [
    { name: 'ipvs', args: 0, invertible: true },
    { name: 'vproto', args: 1, invertible: true },
    { name: 'vaddr', args: 1, invertible: true },
    { name: 'vport', args: 1, invertible: true },
    { name: 'vdir', args: 1 },
    { name: 'vmethod', args: 1, invertible: true },
    { name: 'vportctl', args: 1, invertible: true },
  ],
  parse(opts, ctx) {
    const m = byName(opts, 'ipvs');
    if (m.size === 0) badMatch(ctx, 'ipvs: At least one option is required');
    const o: IpvsOptions = {};
    for (const u of m.values()) {
      const inv = <T>(value: T): Inv<T> => ({ value, invert: u.negated });
      switch (u.name) {
        case 'ipvs':
          o.ipvs = { invert: u.negated };
          break;
        case 'vproto':
          try {
            o.proto = inv(parseProtocol(u.args[0] ?? ''));
          } catch (e) {
            if (e instanceof NameError) badArg(u, e.message);
            throw e;
          }
          break;
        case 'vaddr': {
          const a = parseAddrMask(u, ctx.family);
          a.addr = a.addr.map((b, i) => b & a.mask[i]);
          o.vaddr = inv(a);
          break;
        }
        case 'vport':
          o.vport = inv(port(u));
          break;
        case 'vportctl':
          o.vportctl = inv(port(u));
          break;
        case 'vdir': {
          const d = (u.args[0] ?? '').toUpperCase();
          if (d !== 'ORIGINAL' && d !== 'REPLY') badArg(u, `ipvs: Bad value for "--vdir" option: "${u.args[0] ?? ''}"`);
          o.vdir = d;
          break;
        }
        case 'vmethod': {
          const v = (u.args[0] ?? '').toUpperCase();
          if (v !== 'GATE' && v !== 'IPIP' && v !== 'MASQ')
            badArg(u, `ipvs: Bad value for "--vmethod" option: "${u.args[0] ?? ''}"`);
          o.vmethod = inv(v);
          break;
        }
      }
    }
    if (o.ipvs?.invert && m.size > 1) badOpt(m.get('ipvs')!, '! --ipvs cannot be together with other options');
    return o;
  },
  format(o) {
    const only = o.ipvs && !o.proto && !o.vaddr && !o.vport && !o.vdir && !o.vmethod && !o.vportctl;
    const out: string[] = [];
    if (only) out.push(`${bang(o.ipvs!.invert)}--ipvs`);
    if (o.proto) out.push(`${bang(o.proto.invert)}--vproto ${o.proto.value}`);
    if (o.vaddr) out.push(`${bang(o.vaddr.invert)}--vaddr ${formatVaddr(o.vaddr.value)}`);
    if (o.vport) out.push(`${bang(o.vport.invert)}--vport ${o.vport.value}`);
    if (o.vdir) out.push(`--vdir ${o.vdir}`);
    if (o.vmethod) out.push(`${bang(o.vmethod.invert)}--vmethod ${METHOD_PRINT[o.vmethod.value]}`);
    if (o.vportctl) out.push(`${bang(o.vportctl.invert)}--vportctl ${o.vportctl.value}`);
    return out.join(' ');
  },
};

export default ipvs;
