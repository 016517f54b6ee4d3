// -m physdev (libxt_physdev.c, kernel xt_physdev.c): bridge ports of a bridged packet. A packet with no bridge
// information (meta.physIn and physOut both absent) matches only when every option used is inverted.
import type { MatchExtension, OptionUse } from './types';
import { badMatch, bang, byName } from './util/opts';
import { ifaceMatches, parseIfaceName } from './util/iface';

interface Flag {
  invert: boolean;
}

export interface PhysdevOptions {
  in?: { name: string; invert: boolean };
  out?: { name: string; invert: boolean };
  isIn?: Flag;
  isOut?: Flag;
  isBridged?: Flag;
}

const physdev: MatchExtension<PhysdevOptions> = {
  kind: 'match',
  flowStable: () => true,
  name: 'physdev',
  options: [
    { name: 'physdev-in', args: 1, invertible: true },
    { name: 'physdev-out', args: 1, invertible: true },
    { name: 'physdev-is-in', args: 0, invertible: true },
    { name: 'physdev-is-out', args: 0, invertible: true },
    { name: 'physdev-is-bridged', args: 0, invertible: true },
  ],
  parse(opts, ctx) {
    const m = byName(opts, 'physdev');
    if (m.size === 0) badMatch(ctx, 'PHYSDEV: no physdev option specified');
    const o: PhysdevOptions = {};
    const flag = (u: OptionUse | undefined): Flag | undefined => (u ? { invert: u.negated } : undefined);
    const pin = m.get('physdev-in');
    if (pin) o.in = { name: parseIfaceName(pin), invert: pin.negated };
    const pout = m.get('physdev-out');
    if (pout) o.out = { name: parseIfaceName(pout), invert: pout.negated };
    o.isIn = flag(m.get('physdev-is-in'));
    o.isOut = flag(m.get('physdev-is-out'));
    o.isBridged = flag(m.get('physdev-is-bridged'));
    // physdev_mt_check refuses an output port at LOCAL_OUT unless the rule requires bridged traffic. It reads
    // par->hook_mask, which iptables-nft sets for built-in chains only: user chains reached from OUTPUT pass.
    if (ctx.chain === 'OUTPUT' && (o.out || o.isOut) && (!o.isBridged || o.isBridged.invert))
      badMatch(ctx, 'physdev: --physdev-out and --physdev-is-out only supported in the FORWARD and POSTROUTING chains with bridged traffic');
    return o;
  },
  format(o) {
    const out: string[] = [];
    if (o.isIn) out.push(`${bang(o.isIn.invert)}--physdev-is-in`);
    if (o.in) out.push(`${bang(o.in.invert)}--physdev-in ${o.in.name}`);
    if (o.isOut) out.push(`${bang(o.isOut.invert)}--physdev-is-out`);
    if (o.out) out.push(`${bang(o.out.invert)}--physdev-out ${o.out.name}`);
    if (o.isBridged) out.push(`${bang(o.isBridged.invert)}--physdev-is-bridged`);
    return out.join(' ');
  },
  match(o, ctx) {
    const indev = ctx.meta.physIn;
    const outdev = ctx.meta.physOut;
    if (indev === undefined && outdev === undefined) {
      for (const f of [o.isBridged, o.isIn, o.isOut, o.in, o.out]) if (f && !f.invert) return false;
      return true;
    }
    if (o.isBridged && (outdev !== undefined) === o.isBridged.invert) return false;
    if (o.isIn && (indev !== undefined) === o.isIn.invert) return false;
    if (o.isOut && (outdev !== undefined) === o.isOut.invert) return false;
    if (o.in && indev !== undefined && ifaceMatches(o.in.name, indev) === o.in.invert) return false;
    if (!o.out || outdev === undefined) return true;
    return ifaceMatches(o.out.name, outdev) !== o.out.invert;
  },
};

export default physdev;
