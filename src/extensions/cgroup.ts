// -m cgroup: the control group of the local socket (xt_cgroup revisions 0-2).
import type { MatchExtension } from './types';
import { RuleError } from './types';
import { exclusive, uintArg } from './util/b-opts';

export interface CgroupOptions {
  path?: { value: string; invert: boolean };
  classid?: { value: number; invert: boolean };
}

const cgroup: MatchExtension<CgroupOptions> = {
  kind: 'match',
  name: 'cgroup',
  options: [
    { name: 'path', args: 1, invertible: true },
    { name: 'cgroup', args: 1, invertible: true },
  ],
  unsupported: 'cgroup: the queue does not report the control group of the sending socket',
  parse(uses, ctx) {
    exclusive(uses, ['path', 'cgroup'], 'cgroup');
    const o: CgroupOptions = {};
    for (const u of uses) {
      if (u.name === 'path') o.path = { value: u.args[0] ?? '', invert: u.negated };
      else o.classid = { value: uintArg(u, 0, 0xffffffff, 'cgroup'), invert: u.negated };
    }
    if (!o.path && !o.classid) {
      throw new RuleError(
        'cgroup: --path or --cgroup is required (the kernel refuses this rule: Invalid argument)',
        ctx.loc,
      );
    }
    return o;
  },
  // cgroup_mt_reg .hooks: a local socket is needed.
  allowedHooks: () => ['INPUT', 'OUTPUT', 'POSTROUTING'],
  format(o) {
    // cgroup_save_v1: the path is always printed in double quotes.
    if (o.path) return `${o.path.invert ? '! ' : ''}--path "${o.path.value.replace(/(["\\])/g, '\\$1')}"`;
    return `${o.classid!.invert ? '! ' : ''}--cgroup ${o.classid!.value}`;
  },
};

export default cgroup;
