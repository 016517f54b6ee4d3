// -j IDLETIMER --timeout N --label NAME [--alarm] (extensions/libxt_IDLETIMER.c): any table.
import { RuleError, type TargetExtension } from './types';
import { collect, mustSpecify, uintArg } from './util/t-options';

export interface IdletimerOpts {
  timeout: number;
  label: string;
  alarm: boolean;
}

const MAX_IDLETIMER_LABEL_SIZE = 28;

const target: TargetExtension<IdletimerOpts> = {
  kind: 'target',
  name: 'IDLETIMER',
  options: [
    { name: 'timeout', args: 1 },
    { name: 'label', args: 1 },
    { name: 'alarm', args: 0 },
  ],
  terminal: false,
  unsupported: 'IDLETIMER drives timers in the kernel\'s sysfs (xt_idletimer), which userspace cannot create',
  parse(uses, ctx) {
    const seen = collect('IDLETIMER', uses);
    const t = mustSpecify('IDLETIMER', seen, 'timeout', ctx);
    const l = mustSpecify('IDLETIMER', seen, 'label', ctx);
    if (l.args[0].length > MAX_IDLETIMER_LABEL_SIZE - 1)
      throw new RuleError(`IDLETIMER: --label is longer than ${MAX_IDLETIMER_LABEL_SIZE - 1} characters`, l.argLocs[0] ?? l.loc);
    return { timeout: uintArg('IDLETIMER', t, 0, 0xffffffff), label: l.args[0], alarm: seen.has('alarm') };
  },
  format: (o) => `--timeout ${o.timeout} --label ${o.label}${o.alarm ? ' --alarm' : ''}`,
};

export default target;
