// -j TOS (extensions/libxt_TOS.c revision 1, net/netfilter/xt_DSCP.c tos_tg/tos_tg6): the IPv4 TOS byte or the
// IPv6 traffic class becomes (tos & ~mask) ^ value. Every form prints as `--set-tos 0xVV/0xMM`. mangle only.
import { setTos } from '../engine/rewrite';
import { parseUInt } from '../rules/services';
import { RuleError, type TargetExtension } from './types';
import { collect, exclusive, uintArg } from './util/t-options';

export interface TosOpts {
  value: number;
  mask: number;
}

// The RFC 1349 names, which set only the TOS field proper (mask 0x3f keeps the precedence bits).
const SYMBOLS: ReadonlyArray<[string, number]> = [
  ['Minimize-Delay', 0x10],
  ['Maximize-Throughput', 0x08],
  ['Maximize-Reliability', 0x04],
  ['Minimize-Cost', 0x02],
  ['Normal-Service', 0x00],
];

const FORMS = ['set-tos', 'and-tos', 'or-tos', 'xor-tos'] as const;

function hex2(v: number): string {
  return `0x${v.toString(16).padStart(2, '0')}`;
}

const target: TargetExtension<TosOpts> = {
  kind: 'target',
  name: 'TOS',
  options: FORMS.map((name) => ({ name, args: 1 as const })),
  allowed: { tables: ['mangle'] },
  terminal: false,
  parse(uses, ctx) {
    const seen = collect('TOS', uses);
    exclusive('TOS', seen, FORMS);
    const set = seen.get('set-tos');
    if (set) {
      const w = set.args[0];
      const at = set.argLocs[0] ?? set.loc;
      if (/^[0-9]/.test(w)) {
        const parts = w.split('/');
        const value = parseUInt(parts[0], 0xff);
        const mask = parts.length === 2 ? parseUInt(parts[1], 0xff) : 0xff;
        if (parts.length > 2 || value === undefined || mask === undefined)
          throw new RuleError(`Illegal value: "${w}"`, at);
        return { value, mask };
      }
      const sym = SYMBOLS.find(([name]) => name.toLowerCase() === w.toLowerCase());
      if (!sym) throw new RuleError(`Symbolic name "${w}" is unknown`, at);
      return { value: sym[1], mask: 0x3f };
    }
    const and = seen.get('and-tos');
    if (and) return { value: 0, mask: ~uintArg('TOS', and, 0, 255) & 0xff };
    const or = seen.get('or-tos');
    if (or) {
      const v = uintArg('TOS', or, 0, 255);
      return { value: v, mask: v };
    }
    const xor = seen.get('xor-tos');
    if (xor) return { value: uintArg('TOS', xor, 0, 255), mask: 0 };
    throw new RuleError('TOS: An action is required', ctx.loc);
  },
  format: (o) => `--set-tos ${hex2(o.value)}/${hex2(o.mask)}`,
  apply(o, ctx) {
    const orig = ctx.pkt.tos;
    const nv = ((orig & ~o.mask) ^ o.value) & 0xff;
    if (nv !== orig) {
      setTos(ctx.pkt, nv);
      ctx.rewritten = true;
    }
    return { verdict: 'continue' };
  },
};

export default target;
