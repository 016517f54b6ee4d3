// -m mac (libxt_mac.c, kernel xt_mac.c): the Ethernet source address. The kernel accepts it only in PREROUTING,
// INPUT and FORWARD (its .hooks, so user chains reached from other hooks too): see allowedHooks.
import type { Hook } from '../rules/model';
import type { MatchExtension } from './types';
import { badArg, badMatch, bang, byName } from './util/opts';

export interface MacOptions {
  mac: Uint8Array;
  invert: boolean;
}

export const MAC_HOOKS: readonly Hook[] = ['PREROUTING', 'INPUT', 'FORWARD'];

const mac: MatchExtension<MacOptions> = {
  kind: 'match',
  name: 'mac',
  options: [{ name: 'mac-source', args: 1, invertible: true }],
  parse(opts, ctx) {
    const use = byName(opts, 'mac').get('mac-source');
    if (!use) badMatch(ctx, 'mac: option "--mac-source" must be specified');
    const word = use.args[0] ?? '';
    // xtopt_parse_ethermac: six colon-separated strtoul(16) fields of at most two characters (an empty one is 0).
    const fields = word.split(':');
    if (fields.length !== 6 || !fields.every((f) => /^[0-9a-fA-F]{0,2}$/.test(f)))
      badArg(use, 'Invalid MAC address specified.');
    return { mac: Uint8Array.from(fields.map((h) => (h === '' ? 0 : parseInt(h, 16)))), invert: use.negated };
  },
  allowedHooks: () => MAC_HOOKS,
  format(o) {
    const text = Array.from(o.mac, (b) => b.toString(16).padStart(2, '0')).join(':');
    return `${bang(o.invert)}--mac-source ${text}`;
  },
  match(o, ctx) {
    const src = ctx.meta.srcMac;
    // No Ethernet header (not an Ethernet device, or locally generated): no match, inverted or not.
    if (!src || src.length !== 6) return false;
    return src.every((b, i) => b === o.mac[i]) !== o.invert;
  },
};

export default mac;
