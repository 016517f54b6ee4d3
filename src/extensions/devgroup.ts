// -m devgroup: the device group of the input/output interface (xt_devgroup).
import type { MatchExtension } from './types';
import { RuleError } from './types';
import { GROUP_FILES, readIdNames } from './util/b-names';
import { formatValMask, parseValMask, type ValMask } from './util/b-valmask';

export interface DevgroupOptions {
  src?: ValMask;
  dst?: ValMask;
}

const devgroup: MatchExtension<DevgroupOptions> = {
  kind: 'match',
  name: 'devgroup',
  options: [
    { name: 'src-group', args: 1, invertible: true },
    { name: 'dst-group', args: 1, invertible: true },
  ],
  unsupported: 'devgroup: the device groups of interfaces are not known to nfqwall',
  parse(uses, ctx) {
    const names = readIdNames(GROUP_FILES);
    const o: DevgroupOptions = {};
    for (const u of uses) {
      if (u.name === 'src-group') o.src = parseValMask(u, names, 'devgroup');
      else o.dst = parseValMask(u, names, 'devgroup');
    }
    if (!o.src && !o.dst) {
      throw new RuleError("devgroup match: You must specify either '--src-group' or '--dst-group'", ctx.loc);
    }
    // devgroup_mt_checkentry: no input device at OUTPUT/POSTROUTING, no output device at PREROUTING/INPUT.
    const bad =
      (o.src && ['OUTPUT', 'POSTROUTING'].includes(ctx.chain)) ||
      (o.dst && ['PREROUTING', 'INPUT'].includes(ctx.chain));
    if (bad)
      throw new RuleError(
        `devgroup: not valid in ${ctx.chain} (the kernel refuses this rule: Invalid argument)`,
        ctx.loc,
      );
    return o;
  },
  format(o) {
    const names = readIdNames(GROUP_FILES);
    const w: string[] = [];
    if (o.src) w.push(...(o.src.invert ? ['!'] : []), '--src-group', formatValMask(o.src, names));
    if (o.dst) w.push(...(o.dst.invert ? ['!'] : []), '--dst-group', formatValMask(o.dst, names));
    return w.join(' ');
  },
};

export default devgroup;
