// TTL (IPv4) and HL (IPv6) share net/netfilter/xt_HL.c: set, or add/subtract clamped to 0..255, and the header
// checksum follows.
import { setTtl } from '../../engine/rewrite';
import { RuleError, type OptionUse, type TargetContext, type TargetResult } from '../types';
import { collect, exclusive, uintArg } from './t-options';

export interface HlOpts {
  mode: 'set' | 'dec' | 'inc';
  value: number;
}

export function parseHl(ext: 'TTL' | 'HL', uses: readonly OptionUse[], loc: OptionUse['loc']): HlOpts {
  const p = ext === 'TTL' ? 'ttl' : 'hl';
  const seen = collect(ext, uses);
  exclusive(ext, seen, [`${p}-set`, `${p}-dec`, `${p}-inc`]);
  for (const mode of ['set', 'dec', 'inc'] as const) {
    const u = seen.get(`${p}-${mode}`);
    if (u) return { mode, value: uintArg(ext, u, mode === 'set' ? 0 : 1, 255) };
  }
  throw new RuleError(`${ext}: You must specify an action`, loc);
}

export function formatHl(ext: 'TTL' | 'HL', o: HlOpts): string {
  return `--${ext === 'TTL' ? 'ttl' : 'hl'}-${o.mode} ${o.value}`;
}

export function applyHl(o: HlOpts, ctx: TargetContext): TargetResult {
  const old = ctx.pkt.ttl;
  let v: number;
  if (o.mode === 'set') v = o.value;
  else if (o.mode === 'inc') v = Math.min(255, old + o.value);
  else v = Math.max(0, old - o.value);
  if (v !== old) {
    setTtl(ctx.pkt, v);
    ctx.rewritten = true;
  }
  return { verdict: 'continue' };
}
