// -m connbytes: bytes/packets transferred on the packet's connection (xt_connbytes).
import type { MatchExtension, OptionUse } from './types';
import { RuleError } from './types';
import { fail, failArg } from './util/b-opts';

export interface ConnbytesOptions {
  from: bigint;
  to: bigint; // 2^64-1: no upper bound
  invert: boolean;
  mode: 'packets' | 'bytes' | 'avgpkt';
  dir: 'original' | 'reply' | 'both';
}

const U64_MAX = 0xffffffffffffffffn;

function u64(use: OptionUse, word: string): bigint {
  if (!/^[0-9]+$/.test(word)) failArg(use, `connbytes: bad value for option "--connbytes": "${use.args[0]}"`);
  const v = BigInt(word);
  if (v > U64_MAX) failArg(use, `connbytes: bad value for option "--connbytes": "${use.args[0]}"`);
  return v;
}

const connbytes: MatchExtension<ConnbytesOptions> = {
  kind: 'match',
  name: 'connbytes',
  options: [
    { name: 'connbytes', args: 1, invertible: true },
    { name: 'connbytes-dir', args: 1 },
    { name: 'connbytes-mode', args: 1 },
  ],
  unsupported: 'connbytes: the connection table does not expose per-connection packet and byte counters yet',
  parse(uses, ctx) {
    let range: OptionUse | undefined;
    const o: ConnbytesOptions = { from: 0n, to: U64_MAX, invert: false, mode: 'packets', dir: 'both' };
    let mode = false;
    let dir = false;
    for (const u of uses) {
      const w = u.args[0] ?? '';
      if (u.name === 'connbytes') {
        range = u;
        const i = w.indexOf(':');
        o.from = i === 0 ? 0n : u64(u, i < 0 ? w : w.slice(0, i));
        o.to = i < 0 || i === w.length - 1 ? U64_MAX : u64(u, w.slice(i + 1));
        o.invert = u.negated;
        if (o.from > o.to) failArg(u, `${o.from} should be less than ${o.to}`);
      } else if (u.name === 'connbytes-dir') {
        if (w !== 'original' && w !== 'reply' && w !== 'both') failArg(u, `Unknown --connbytes-dir "${w}"`);
        o.dir = w;
        dir = true;
      } else {
        if (w !== 'packets' && w !== 'bytes' && w !== 'avgpkt') failArg(u, `Unknown --connbytes-mode "${w}"`);
        o.mode = w;
        mode = true;
      }
    }
    if (!range) throw new RuleError('connbytes: option "--connbytes" must be specified', ctx.loc);
    if (!dir) fail(range, 'connbytes: option "--connbytes-dir" must be specified');
    if (!mode) fail(range, 'connbytes: option "--connbytes-mode" must be specified');
    return o;
  },
  format(o) {
    const range = o.to === U64_MAX ? `${o.from}` : `${o.from}:${o.to}`;
    return `${o.invert ? '! ' : ''}--connbytes ${range} --connbytes-mode ${o.mode} --connbytes-dir ${o.dir}`;
  },
};

export default connbytes;
