// -j CONNSECMARK --save|--restore (extensions/libxt_CONNSECMARK.c): mangle and security tables.
import { RuleError, type TargetExtension } from './types';
import { collect, exclusive } from './util/t-options';

export interface ConnsecmarkOpts {
  mode: 'save' | 'restore';
}

const target: TargetExtension<ConnsecmarkOpts> = {
  kind: 'target',
  name: 'CONNSECMARK',
  options: [
    { name: 'save', args: 0 },
    { name: 'restore', args: 0 },
  ],
  allowed: { tables: ['mangle', 'security'] },
  terminal: false,
  unsupported: 'CONNSECMARK copies SELinux security marks between packet and connection, which userspace cannot see',
  parse(uses, ctx) {
    const seen = collect('CONNSECMARK', uses);
    exclusive('CONNSECMARK', seen, ['save', 'restore']);
    if (seen.has('save')) return { mode: 'save' };
    if (seen.has('restore')) return { mode: 'restore' };
    throw new RuleError('CONNSECMARK target: parameter required', ctx.loc);
  },
  format: (o) => `--${o.mode}`,
};

export default target;
