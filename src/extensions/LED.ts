// -j LED --led-trigger-id NAME [--led-delay ms|inf] [--led-always-blink] (extensions/libxt_LED.c): any table.
import { parseUInt } from '../rules/services';
import { RuleError, type TargetExtension } from './types';
import { collect, mustSpecify } from './util/t-options';

export interface LedOpts {
  id: string;
  /** -1: infinite. */
  delay: number;
  alwaysBlink: boolean;
}

const target: TargetExtension<LedOpts> = {
  kind: 'target',
  name: 'LED',
  options: [
    { name: 'led-trigger-id', args: 1 },
    { name: 'led-delay', args: 1 },
    { name: 'led-always-blink', args: 0 },
  ],
  terminal: false,
  unsupported: 'LED blinks a kernel LED trigger (ledtrig), which userspace cannot register as the kernel target does',
  parse(uses, ctx) {
    const seen = collect('LED', uses);
    const id = mustSpecify('LED', seen, 'led-trigger-id', ctx);
    // char id[27] holds "netfilter-" + the name.
    if (id.args[0].length + 'netfilter-'.length > 26)
      throw new RuleError('--led-trigger-id must be 16 chars or less', id.argLocs[0] ?? id.loc);
    if (id.args[0] === '') throw new RuleError('--led-trigger-id cannot be blank', id.argLocs[0] ?? id.loc);
    const o: LedOpts = { id: id.args[0], delay: 0, alwaysBlink: seen.has('led-always-blink') };
    const d = seen.get('led-delay');
    if (d) {
      const v = d.args[0].slice(0, 3).toLowerCase() === 'inf' ? -1 : parseUInt(d.args[0], 0x7fffffff);
      if (v === undefined) throw new RuleError(`LED: bad value for option "--led-delay"`, d.argLocs[0] ?? d.loc);
      o.delay = v;
    }
    return o;
  },
  format(o) {
    // LED_save always quotes the id, escaping only `"` and `\`.
    let s = `--led-trigger-id "${o.id.replace(/["\\]/g, (c) => `\\${c}`)}"`;
    if (o.delay === -1) s += ' --led-delay inf';
    else if (o.delay) s += ` --led-delay ${o.delay}`;
    if (o.alwaysBlink) s += ' --led-always-blink';
    return s;
  },
};

export default target;
