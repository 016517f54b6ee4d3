// rt (src/extensions/rt.ts): it looks for a routing header. The matcher sends every IPv6 packet with extension
// headers to JavaScript, so a packet it evaluates has none and rt does not match it, whatever the options.
import { OP } from './format';
import { op, type MatchEncoder } from './op';

export const rt: MatchEncoder = () => op(OP.RT, []);
