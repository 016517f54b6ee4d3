// A ruleset that parses and prints may still use something nfqwall cannot do from userspace; loading it for
// enforcement must fail naming each such rule, never skip it.
import { RuleError } from '../extensions/types';
import { RuleErrors } from './errors';
import type { Ruleset } from './model';
import { MAY_BE_UNENFORCEABLE, surelyNone } from './facts';

export function checkEnforceable(rs: Ruleset): void {
  if (surelyNone(rs, MAY_BE_UNENFORCEABLE)) return;
  const errors: RuleError[] = [];
  for (const table of rs.tables.values())
    for (const chain of table.chains.values())
      for (const rule of chain.rules) {
        for (const m of rule.matches) {
          const why = m.ext.unsupported ?? m.ext.unsupportedFor?.(m.opts);
          if (why) errors.push(new RuleError(`match "${m.ext.name}" cannot be enforced by nfqwall: ${why}`, m.loc));
        }
        const t = rule.target;
        if (t?.kind !== 'extension') continue;
        const why = t.ext.unsupported ?? t.ext.unsupportedFor?.(t.opts);
        if (why) errors.push(new RuleError(`target "${t.ext.name}" cannot be enforced by nfqwall: ${why}`, t.loc));
      }
  if (errors.length > 0) throw new RuleErrors(errors);
}
