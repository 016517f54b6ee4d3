// The text kernel `iptables-save` (nft backend, v1.8.9) prints for a ruleset, without its `#` header and footer:
// per table `*name`, built-in chains in kernel order then user chains sorted by name (the nft backend lists them
// so), the rules of each chain in chain order, `COMMIT`.
import { formatRuleSpec } from './format';
import type { Chain, Counters, Ruleset } from './model';

export interface SaveOptions {
  /** `-c`: print rule counters as `[p:b]` prefixes and the chains' real counters. */
  counters?: boolean;
}

function ctr(c: Counters, show: boolean): string {
  return show ? `[${c.packets}:${c.bytes}]` : '[0:0]';
}

function byName(a: Chain, b: Chain): number {
  // strcmp order (bytes), not locale order.
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export function saveRuleset(rs: Ruleset, opts: SaveOptions = {}): string {
  const out: string[] = [];
  const show = opts.counters === true;
  for (const table of rs.tables.values()) {
    out.push(`*${table.name}`);
    const all = [...table.chains.values()];
    const builtin = all.filter((c) => c.builtin);
    const user = all.filter((c) => !c.builtin).sort(byName);
    for (const c of builtin) out.push(`:${c.name} ${c.policy ?? 'ACCEPT'} ${ctr(c.counters, show)}`);
    for (const c of user) out.push(`:${c.name} - [0:0]`);
    for (const c of [...builtin, ...user]) {
      for (const r of c.rules) {
        const spec = formatRuleSpec(r, rs.family);
        const line = spec ? `-A ${c.name} ${spec}` : `-A ${c.name}`;
        out.push(show ? `[${r.counters.packets}:${r.counters.bytes}] ${line}` : line);
      }
    }
    out.push('COMMIT');
  }
  return out.length > 0 ? `${out.join('\n')}\n` : '';
}
