// The matches the native matcher evaluates, by extension name; any other is a SLOW op.
import { addrtype } from './addrtype';
import { conntrack, state } from './ct';
import { icmp } from './icmp';
import { iprange } from './iprange';
import { connmark, mark } from './mark';
import { multiport } from './multiport';
import type { MatchEncoder } from './op';
import { physdev } from './physdev';
import { rt } from './rt';
import { statistic } from './statistic';
import { tcp } from './tcp';
import { ttl } from './ttl';
import { udp } from './udp';

/** `comment` compiles to nothing (it always matches). */
export const NO_OP = 'comment';

export const MATCH_OPS: ReadonlyMap<string, MatchEncoder> = new Map([
  ['tcp', tcp],
  ['udp', udp],
  ['udplite', udp],
  ['multiport', multiport],
  ['mark', mark],
  ['connmark', connmark],
  ['conntrack', conntrack],
  ['state', state],
  ['icmp', icmp],
  ['icmp6', icmp],
  ['iprange', iprange],
  ['addrtype', addrtype],
  ['ttl', ttl],
  ['hl', ttl],
  ['rt', rt],
  ['physdev', physdev],
  ['statistic', statistic],
]);
