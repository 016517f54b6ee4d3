// -j TEE --gateway ADDR [--oif DEV] (extensions/libxt_TEE.c, net/netfilter/xt_TEE.c): any table.
import { formatIpAddr } from '../rules/addr';
import { RuleError, type TargetExtension } from './types';
import { collect, mustSpecify } from './util/t-options';
import { parseHostAddr } from './util/t-host';

export interface TeeOpts {
  gateway: Uint8Array;
  oif?: string;
}

const target: TargetExtension<TeeOpts> = {
  kind: 'target',
  name: 'TEE',
  options: [
    { name: 'gateway', args: 1 },
    { name: 'oif', args: 1 },
  ],
  terminal: false,
  unsupported: 'TEE clones the packet and routes the copy to a gateway inside the kernel, not yet implemented',
  parse(uses, ctx) {
    const seen = collect('TEE', uses);
    const g = mustSpecify('TEE', seen, 'gateway', ctx);
    const a = parseHostAddr(g.args[0], ctx.family);
    if (!a) throw new RuleError(`TEE: invalid IPv${ctx.family} address "${g.args[0]}"`, g.argLocs[0] ?? g.loc);
    // tee_tg_check: the all-zero address (0.0.0.0, ::) is refused, in every table and chain.
    if (a.every((b) => b === 0))
      throw new RuleError(`TEE: gateway ${formatIpAddr(a)} is not allowed (the kernel refuses it: Invalid argument)`, g.argLocs[0] ?? g.loc);
    const o: TeeOpts = { gateway: a };
    const oif = seen.get('oif');
    if (oif) {
      if (oif.args[0].length > 15) throw new RuleError('TEE: --oif name is longer than 15 characters', oif.argLocs[0] ?? oif.loc);
      o.oif = oif.args[0];
    }
    return o;
  },
  format: (o) => `--gateway ${formatIpAddr(o.gateway)}${o.oif ? ` --oif ${o.oif}` : ''}`,
};

export default target;
