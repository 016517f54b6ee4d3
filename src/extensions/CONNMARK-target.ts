// -j CONNMARK (extensions/libxt_CONNMARK.c revision 2, net/netfilter/xt_connmark.c connmark_tg_shift). The set forms
// print as `--set-xmark`, save/restore always print both masks; shifts print only when non-zero.
// As in the kernel, save XORs in all the nfmask bits (not only those inside ctmask) and restore all the ctmask bits.
import { RuleError, type OptionUse, type TargetExtension } from './types';
import { collect, exclusive, hex, uintArg } from './util/t-options';
import { parseMarkMask, xmark } from './util/t-mark';

export interface ConnmarkOpts {
  mode: 'set' | 'save' | 'restore';
  ctmark: number;
  ctmask: number;
  nfmask: number;
  shiftDir: 'left' | 'right';
  shiftBits: number;
}

const OPS = ['set-xmark', 'set-mark', 'and-mark', 'or-mark', 'xor-mark', 'save-mark', 'restore-mark'] as const;
const ALL = [...OPS, 'ctmask', 'nfmask', 'mask', 'left-shift-mark', 'right-shift-mark'] as const;
const ARGS: Readonly<Record<string, 0 | 1>> = { 'save-mark': 0, 'restore-mark': 0 };

function shift(v: number, o: ConnmarkOpts): number {
  return (o.shiftDir === 'right' ? v >>> o.shiftBits : v << o.shiftBits) >>> 0;
}

const target: TargetExtension<ConnmarkOpts> = {
  kind: 'target',
  name: 'CONNMARK',
  options: ALL.map((name) => ({ name, args: ARGS[name] ?? 1 })),
  terminal: false,
  parse(uses, ctx) {
    const seen = collect('CONNMARK', uses);
    exclusive('CONNMARK', seen, OPS);
    exclusive('CONNMARK', seen, ['ctmask', 'mask']);
    exclusive('CONNMARK', seen, ['nfmask', 'mask']);
    exclusive('CONNMARK', seen, ['left-shift-mark', 'right-shift-mark']);
    if (!OPS.some((n) => seen.has(n))) throw new RuleError('CONNMARK target: No operation specified', ctx.loc);
    const o: ConnmarkOpts = { mode: 'set', ctmark: 0, ctmask: 0xffffffff, nfmask: 0xffffffff, shiftDir: 'left', shiftBits: 0 };
    // In line order: libxtables runs each option's callback as it comes, so a later --mask overrides a set form's mask.
    for (const u of uses as OptionUse[]) {
      switch (u.name) {
        case 'set-xmark': {
          const m = parseMarkMask('CONNMARK', u);
          o.ctmark = m.value;
          o.ctmask = m.mask;
          break;
        }
        case 'set-mark': {
          const m = parseMarkMask('CONNMARK', u);
          o.ctmark = m.value;
          o.ctmask = (m.value | m.mask) >>> 0;
          break;
        }
        case 'and-mark':
          o.ctmark = 0;
          o.ctmask = ~uintArg('CONNMARK', u, 0, 0xffffffff) >>> 0;
          break;
        case 'or-mark':
          o.ctmark = o.ctmask = uintArg('CONNMARK', u, 0, 0xffffffff);
          break;
        case 'xor-mark':
          o.ctmark = uintArg('CONNMARK', u, 0, 0xffffffff);
          o.ctmask = 0;
          break;
        case 'save-mark':
          o.mode = 'save';
          break;
        case 'restore-mark':
          o.mode = 'restore';
          break;
        case 'ctmask':
          o.ctmask = uintArg('CONNMARK', u, 0, 0xffffffff);
          break;
        case 'nfmask':
          o.nfmask = uintArg('CONNMARK', u, 0, 0xffffffff);
          break;
        case 'mask':
          o.ctmask = o.nfmask = uintArg('CONNMARK', u, 0, 0xffffffff);
          break;
        case 'left-shift-mark':
        case 'right-shift-mark':
          o.shiftDir = u.name === 'left-shift-mark' ? 'left' : 'right';
          o.shiftBits = uintArg('CONNMARK', u, 0, 31);
          break;
      }
    }
    return o;
  },
  format(o) {
    let s =
      o.mode === 'set'
        ? `--set-xmark ${hex(o.ctmark)}/${hex(o.ctmask)}`
        : `--${o.mode}-mark --nfmask ${hex(o.nfmask)} --ctmask ${hex(o.ctmask)}`;
    if (o.shiftBits) s += ` --${o.shiftDir}-shift-mark ${o.shiftBits}`;
    return s;
  },
  apply(o, ctx) {
    const ct = ctx.ct;
    // nf_ct_get() gives no conntrack for untracked packets or when there is none: the target does nothing.
    if (!ct || ct.state === 'UNTRACKED') return { verdict: 'continue' };
    switch (o.mode) {
      case 'set':
        ct.mark = shift(xmark(ct.mark, o.ctmark, o.ctmask), o);
        break;
      case 'save': {
        const m = shift((ctx.meta.mark & o.nfmask) >>> 0, o);
        ct.mark = xmark(ct.mark, m, o.ctmask);
        break;
      }
      case 'restore': {
        const m = shift((ct.mark & o.ctmask) >>> 0, o);
        ctx.meta.mark = xmark(ctx.meta.mark, m, o.nfmask);
        break;
      }
    }
    return { verdict: 'continue' };
  },
};

export default target;
