// -j AUDIT --type accept|drop|reject (extensions/libxt_AUDIT.c, net/netfilter/xt_AUDIT.c): any table.
import { RuleError, type TargetExtension } from './types';
import { collect, mustSpecify } from './util/t-options';

export interface AuditOpts {
  type: 'accept' | 'drop' | 'reject';
}

const target: TargetExtension<AuditOpts> = {
  kind: 'target',
  name: 'AUDIT',
  options: [{ name: 'type', args: 1 }],
  terminal: false,
  unsupported: 'AUDIT writes NETFILTER_PKT records to the kernel audit log, which only the kernel target can do',
  parse(uses, ctx) {
    const u = mustSpecify('AUDIT', collect('AUDIT', uses), 'type', ctx);
    const t = u.args[0].toLowerCase();
    if (t !== 'accept' && t !== 'drop' && t !== 'reject')
      throw new RuleError(`Bad action type value "${u.args[0]}"`, u.argLocs[0] ?? u.loc);
    return { type: t };
  },
  format: (o) => `--type ${o.type}`,
};

export default target;
