// -j CLASSIFY --set-class MAJOR:MINOR (extensions/libxt_CLASSIFY.c, net/netfilter/xt_CLASSIFY.c): any table,
// POSTROUTING/FORWARD/OUTPUT. Both numbers are hex (sscanf "%x:%x"), kept to 16 bits each (TC_H_MAKE), text after
// the second number is ignored; iptables-save prints %04x:%04x.
import { RuleError, type TargetExtension } from './types';
import { collect, mustSpecify } from './util/t-options';

export interface ClassifyOpts {
  major: number;
  minor: number;
}

const HEX = /^\s*(?:0[xX])?([0-9a-fA-F]+)/;

function scanHex(s: string): { v: number; rest: string } | undefined {
  const m = HEX.exec(s);
  if (!m) return undefined;
  // sscanf %x reads into an unsigned int: keep the low 32 bits of an overlong number.
  const digits = m[1].length > 8 ? m[1].slice(-8) : m[1];
  return { v: parseInt(digits, 16) >>> 0, rest: s.slice(m[0].length) };
}

const target: TargetExtension<ClassifyOpts> = {
  kind: 'target',
  name: 'CLASSIFY',
  options: [{ name: 'set-class', args: 1 }],
  allowed: { hooks: ['POSTROUTING', 'FORWARD', 'OUTPUT'] },
  terminal: false,
  unsupported:
    'CLASSIFY sets the packet priority (skb->priority), which an NFQUEUE verdict cannot carry back to the kernel',
  parse(uses, ctx) {
    const seen = collect('CLASSIFY', uses);
    const u = mustSpecify('CLASSIFY', seen, 'set-class', ctx);
    const w = u.args[0];
    const a = scanHex(w);
    const b = a && a.rest.startsWith(':') ? scanHex(a.rest.slice(1)) : undefined;
    if (!a || !b) throw new RuleError(`Bad class value "${w}"`, u.argLocs[0] ?? u.loc);
    return { major: a.v & 0xffff, minor: b.v & 0xffff };
  },
  format: (o) => `--set-class ${o.major.toString(16).padStart(4, '0')}:${o.minor.toString(16).padStart(4, '0')}`,
};

export default target;
