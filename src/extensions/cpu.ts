// -m cpu: the CPU handling the packet (xt_cpu).
import type { MatchExtension } from './types';
import { RuleError } from './types';
import { uintArg } from './util/b-opts';

export interface CpuOptions {
  cpu: number;
  invert: boolean;
}

const cpu: MatchExtension<CpuOptions> = {
  kind: 'match',
  name: 'cpu',
  options: [{ name: 'cpu', args: 1, invertible: true }],
  unsupported: 'cpu: the queue does not report which CPU received the packet',
  parse(uses, ctx) {
    const u = uses.find((x) => x.name === 'cpu');
    if (!u) throw new RuleError('cpu: option "--cpu" must be specified', ctx.loc);
    return { cpu: uintArg(u, 0, 0xffffffff, 'cpu'), invert: u.negated };
  },
  format(o) {
    return `${o.invert ? '! ' : ''}--cpu ${o.cpu}`;
  },
};

export default cpu;
