// -j DSCP (extensions/libxt_DSCP.c, net/netfilter/xt_DSCP.c dscp_tg/dscp_tg6): replaces the upper six bits of the
// TOS byte / traffic class and keeps the two ECN bits. A class name prints as its number. mangle only.
import { setTos } from '../engine/rewrite';
import { RuleError, type TargetExtension } from './types';
import { collect, exclusive, mustSpecify, uintArg } from './util/t-options';

export interface DscpOpts {
  dscp: number;
}

// extensions/dscp_helper.c ds_classes.
const CLASSES: Readonly<Record<string, number>> = {
  cs0: 0x00, cs1: 0x08, cs2: 0x10, cs3: 0x18, cs4: 0x20, cs5: 0x28, cs6: 0x30, cs7: 0x38,
  be: 0x00,
  af11: 0x0a, af12: 0x0c, af13: 0x0e,
  af21: 0x12, af22: 0x14, af23: 0x16,
  af31: 0x1a, af32: 0x1c, af33: 0x1e,
  af41: 0x22, af42: 0x24, af43: 0x26,
  ef: 0x2e,
};

const target: TargetExtension<DscpOpts> = {
  kind: 'target',
  name: 'DSCP',
  options: [
    { name: 'set-dscp', args: 1 },
    { name: 'set-dscp-class', args: 1 },
  ],
  allowed: { tables: ['mangle'] },
  terminal: false,
  parse(uses, ctx) {
    const seen = collect('DSCP', uses);
    exclusive('DSCP', seen, ['set-dscp', 'set-dscp-class']);
    const cls = seen.get('set-dscp-class');
    if (cls) {
      const v = CLASSES[cls.args[0].toLowerCase()];
      if (v === undefined) throw new RuleError(`Invalid DSCP value \`${cls.args[0]}'`, cls.argLocs[0] ?? cls.loc);
      return { dscp: v };
    }
    if (!seen.has('set-dscp')) throw new RuleError('DSCP target: Parameter --set-dscp is required', ctx.loc);
    return { dscp: uintArg('DSCP', mustSpecify('DSCP', seen, 'set-dscp', ctx), 0, 63) };
  },
  format: (o) => `--set-dscp 0x${o.dscp.toString(16).padStart(2, '0')}`,
  apply(o, ctx) {
    const tos = ctx.pkt.tos;
    if (tos >> 2 !== o.dscp) {
      setTos(ctx.pkt, (tos & 0x03) | (o.dscp << 2));
      ctx.rewritten = true;
    }
    return { verdict: 'continue' };
  },
};

export default target;
