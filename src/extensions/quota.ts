// -m quota: matches until the rule has seen N bytes (xt_quota). The remaining quota is per rule.
import type { MatchExtension } from './types';
import { RuleError } from './types';
import { failArg } from './util/b-opts';

export interface QuotaOptions {
  quota: bigint;
  invert: boolean;
}

interface QuotaState {
  remain: bigint;
}

const quota: MatchExtension<QuotaOptions> = {
  kind: 'match',
  name: 'quota',
  options: [{ name: 'quota', args: 1, invertible: true }],
  parse(uses, ctx) {
    const u = uses.find((x) => x.name === 'quota');
    if (!u) throw new RuleError('quota: option "--quota" must be specified', ctx.loc);
    const word = u.args[0] ?? '';
    let v: bigint;
    try {
      if (!/^\s*(0[xX][0-9a-fA-F]+|[0-9]+)$/.test(word)) throw new Error();
      v = /^\s*0[0-7]+$/.test(word) ? BigInt(`0o${word.trim().slice(1)}`) : BigInt(word.trim());
    } catch {
      failArg(u, `quota: bad value for option "--quota", or out of range (0-18446744073709551615).`);
    }
    if (v! > 0xffffffffffffffffn)
      failArg(u, `quota: bad value for option "--quota", or out of range (0-18446744073709551615).`);
    return { quota: v!, invert: u.negated };
  },
  format(o) {
    return `${o.invert ? '! ' : ''}--quota ${o.quota}`;
  },
  createState(o): QuotaState {
    return { remain: o.quota };
  },
  match(o, ctx) {
    // quota_mt: a packet that no longer fits uses the quota up, so smaller ones do not slip through later.
    const st = ctx.state as QuotaState | undefined;
    const s = st ?? { remain: o.quota };
    const len = BigInt(ctx.pkt.length);
    if (s.remain >= len) {
      s.remain -= len;
      return !o.invert;
    }
    s.remain = 0n;
    return o.invert;
  },
};

export default quota;
