// -m policy: the IPsec policy that handled (in) or will handle (out) the packet (xt_policy).
import { AddrError, formatIpAddr, maskPrefixLength, parseIpNet } from '../rules/addr';
import type { Family, IpNet } from '../rules/model';
import type { MatchExtension, OptionUse } from './types';
import { RuleError } from './types';
import { fail, failArg, find, parseUintWord, uintArg } from './util/b-opts';

interface Inv<T> {
  value: T;
  invert: boolean;
}

export interface PolicyElement {
  reqid?: Inv<number>;
  spi?: Inv<number>;
  proto?: Inv<'ah' | 'esp' | 'ipcomp'>;
  mode?: Inv<'transport' | 'tunnel'>;
  tunnelSrc?: Inv<IpNet>;
  tunnelDst?: Inv<IpNet>;
}

export interface PolicyOptions {
  dir: 'in' | 'out';
  pol: 'none' | 'ipsec';
  strict: boolean;
  elements: PolicyElement[];
}

const MAX_ELEM = 4; // XT_POLICY_MAX_ELEM
const PROTOS: Readonly<Record<string, 'ah' | 'esp' | 'ipcomp'>> = {
  ah: 'ah',
  '51': 'ah',
  esp: 'esp',
  '50': 'esp',
  ipcomp: 'ipcomp',
  '108': 'ipcomp',
};
const IN_HOOKS = ['PREROUTING', 'INPUT', 'FORWARD'];
const OUT_HOOKS = ['FORWARD', 'OUTPUT', 'POSTROUTING'];

function net(u: OptionUse, family: Family): IpNet {
  try {
    return parseIpNet(u.args[0] ?? '', family);
  } catch (e) {
    if (e instanceof AddrError) failArg(u, `policy: ${e.message}`);
    throw e;
  }
}

/** xtables_ipaddr_to_numeric + xtables_ipmask_to_numeric: no suffix for a full mask. */
function fmtNet(n: IpNet): string {
  const len = maskPrefixLength(n.mask);
  const a = formatIpAddr(n.addr);
  if (len === n.mask.length * 8) return a;
  return len >= 0 ? `${a}/${len}` : `${a}/${formatIpAddr(n.mask)}`;
}

const policy: MatchExtension<PolicyOptions> = {
  kind: 'match',
  name: 'policy',
  options: [
    { name: 'dir', args: 1 },
    { name: 'pol', args: 1 },
    { name: 'strict', args: 0 },
    { name: 'reqid', args: 1, invertible: true, repeatable: true },
    { name: 'spi', args: 1, invertible: true, repeatable: true },
    { name: 'tunnel-src', args: 1, invertible: true, repeatable: true },
    { name: 'tunnel-dst', args: 1, invertible: true, repeatable: true },
    { name: 'proto', args: 1, invertible: true, repeatable: true },
    { name: 'mode', args: 1, invertible: true, repeatable: true },
    { name: 'next', args: 0, repeatable: true },
  ],
  unsupported: 'policy: IPsec state (xfrm) of the packet is not visible to nfqwall',
  parse(uses, ctx) {
    const o: PolicyOptions = { dir: 'in', pol: 'none', strict: false, elements: [{}] };
    let cur = o.elements[0]!;
    const once = (u: OptionUse, key: keyof PolicyElement) => {
      if (cur[key]) fail(u, `policy match: double --${u.name} option`);
    };
    for (const u of uses) {
      const w = u.args[0] ?? '';
      switch (u.name) {
        case 'dir':
          if (w !== 'in' && w !== 'out') failArg(u, `policy match: invalid dir "${w}"`);
          o.dir = w as 'in' | 'out';
          break;
        case 'pol':
          if (w !== 'none' && w !== 'ipsec') failArg(u, `policy match: invalid policy "${w}"`);
          o.pol = w as 'none' | 'ipsec';
          break;
        case 'strict':
          o.strict = true;
          break;
        case 'reqid':
          once(u, 'reqid');
          cur.reqid = { value: uintArg(u, 0, 0xffffffff, 'policy'), invert: u.negated };
          break;
        case 'spi': {
          once(u, 'spi');
          const v = parseUintWord(w);
          if (v === undefined) failArg(u, `policy: bad value for option "--spi"`);
          cur.spi = { value: v!, invert: u.negated };
          break;
        }
        case 'tunnel-src':
          once(u, 'tunnelSrc');
          cur.tunnelSrc = { value: net(u, ctx.family), invert: u.negated };
          break;
        case 'tunnel-dst':
          once(u, 'tunnelDst');
          cur.tunnelDst = { value: net(u, ctx.family), invert: u.negated };
          break;
        case 'proto': {
          once(u, 'proto');
          const p = PROTOS[w.toLowerCase()];
          if (!p) failArg(u, `policy match: protocol "${w}" not allowed, must be ah, esp or ipcomp`);
          cur.proto = { value: p!, invert: u.negated };
          break;
        }
        case 'mode':
          once(u, 'mode');
          if (w !== 'transport' && w !== 'tunnel') failArg(u, `policy match: invalid mode "${w}"`);
          cur.mode = { value: w as 'transport' | 'tunnel', invert: u.negated };
          break;
        case 'next':
          if (!find(uses, 'strict')) fail(u, 'policy: option "--next" also requires "--strict".');
          if (o.elements.length >= MAX_ELEM) fail(u, `policy match: maximum policy depth reached (${MAX_ELEM})`);
          cur = {};
          o.elements.push(cur);
          break;
      }
    }
    if (!find(uses, 'dir')) throw new RuleError('policy match: neither --dir in nor --dir out specified', ctx.loc);
    if (!find(uses, 'pol')) throw new RuleError('policy match: --pol must be specified', ctx.loc);
    // policy_mt_check: `in` needs an input path, `out` an output path (built-in chains; user chains: the validator).
    const builtin = IN_HOOKS.includes(ctx.chain) || OUT_HOOKS.includes(ctx.chain);
    if (builtin && !(o.dir === 'in' ? IN_HOOKS : OUT_HOOKS).includes(ctx.chain)) {
      throw new RuleError(
        `policy: --dir ${o.dir} is not valid in ${ctx.chain} (the kernel refuses this rule: Invalid argument)`,
        ctx.loc,
      );
    }
    for (const e of o.elements) {
      const tunnel = e.mode !== undefined && (e.mode.value === 'tunnel') !== e.mode.invert;
      if ((e.tunnelSrc || e.tunnelDst) && !tunnel) {
        fail(
          find(uses, e.tunnelSrc ? 'tunnel-src' : 'tunnel-dst')!,
          'policy match: --tunnel-src/--tunnel-dst is only valid in tunnel mode',
        );
      }
    }
    // A trailing empty element (no options after the last --next) is not an element.
    const last = o.elements[o.elements.length - 1]!;
    if (o.elements.length > 1 && Object.keys(last).length === 0) o.elements.pop();
    if (!o.strict && o.elements.length === 1 && Object.keys(o.elements[0]!).length === 0) o.elements = [];
    return o;
  },
  format(o) {
    const w = ['--dir', o.dir, '--pol', o.pol];
    if (o.strict) w.push('--strict');
    o.elements.forEach((e, i) => {
      const inv = (x: Inv<unknown>) => (x.invert ? ['!'] : []);
      if (e.reqid) w.push(...inv(e.reqid), '--reqid', String(e.reqid.value));
      if (e.spi) w.push(...inv(e.spi), '--spi', `0x${e.spi.value.toString(16)}`);
      if (e.proto) w.push(...inv(e.proto), '--proto', e.proto.value);
      if (e.mode) w.push(...inv(e.mode), '--mode', e.mode.value);
      if (e.tunnelDst) w.push(...inv(e.tunnelDst), '--tunnel-dst', fmtNet(e.tunnelDst.value));
      if (e.tunnelSrc) w.push(...inv(e.tunnelSrc), '--tunnel-src', fmtNet(e.tunnelSrc.value));
      if (i + 1 < o.elements.length) w.push('--next');
    });
    return w.join(' ');
  },
};

export default policy;
