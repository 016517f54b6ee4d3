// -j MARK (extensions/libxt_MARK.c revision 2, net/netfilter/xt_mark.c): every form is stored as an xmark pair and
// iptables-save prints `--set-xmark 0xV/0xM` for all of them (REFERENCE.md 1.5). The kernel has no table or hook
// restriction for it.
import { RuleError, type TargetExtension } from './types';
import { collect, exclusive, hex, uintArg } from './util/t-options';
import { parseMarkMask, xmark } from './util/t-mark';

export interface MarkOpts {
  /** mark = (mark & ~mask) ^ value */
  value: number;
  mask: number;
}

const FORMS = ['set-xmark', 'set-mark', 'and-mark', 'or-mark', 'xor-mark'] as const;

const target: TargetExtension<MarkOpts> = {
  kind: 'target',
  flowStable: () => true,
  name: 'MARK',
  options: FORMS.map((name) => ({ name, args: 1 as const })),
  terminal: false,
  parse(uses, ctx) {
    const seen = collect('MARK', uses);
    exclusive('MARK', seen, FORMS);
    const u = FORMS.map((f) => seen.get(f)).find((x) => x !== undefined);
    if (!u)
      throw new RuleError('MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is required', ctx.loc);
    switch (u.name) {
      case 'set-xmark':
        return parseMarkMask('MARK', u);
      case 'set-mark': {
        const { value, mask } = parseMarkMask('MARK', u);
        return { value, mask: (value | mask) >>> 0 };
      }
      case 'and-mark':
        return { value: 0, mask: ~uintArg('MARK', u, 0, 0xffffffff) >>> 0 };
      case 'or-mark': {
        const v = uintArg('MARK', u, 0, 0xffffffff);
        return { value: v, mask: v };
      }
      default:
        return { value: uintArg('MARK', u, 0, 0xffffffff), mask: 0 };
    }
  },
  format: (o) => `--set-xmark ${hex(o.value)}/${hex(o.mask)}`,
  apply(o, ctx) {
    ctx.meta.mark = xmark(ctx.meta.mark, o.value, o.mask);
    return { verdict: 'continue' };
  },
};

export default target;
