// -j SECMARK --selctx CONTEXT (extensions/libxt_SECMARK.c): mangle and security tables.
import { RuleError, type TargetExtension } from './types';
import { collect, mustSpecify } from './util/t-options';

export interface SecmarkOpts {
  selctx: string;
}

const SECMARK_SECCTX_MAX = 256;

const target: TargetExtension<SecmarkOpts> = {
  kind: 'target',
  name: 'SECMARK',
  options: [{ name: 'selctx', args: 1 }],
  allowed: { tables: ['mangle', 'security'] },
  terminal: false,
  unsupported: 'SECMARK sets the SELinux security mark of the packet, which an NFQUEUE verdict cannot carry',
  parse(uses, ctx) {
    const u = mustSpecify('SECMARK', collect('SECMARK', uses), 'selctx', ctx);
    if (u.args[0].length > SECMARK_SECCTX_MAX - 1)
      throw new RuleError(`SECMARK: --selctx is longer than ${SECMARK_SECCTX_MAX - 1} characters`, u.argLocs[0] ?? u.loc);
    return { selctx: u.args[0] };
  },
  // SECMARK_save prints the context as it is, unquoted.
  format: (o) => `--selctx ${o.selctx}`,
};

export default target;
