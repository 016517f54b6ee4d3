// -j SET (extensions/libxt_SET.c revision 3, net/netfilter/xt_set.c): adds to / deletes from ipsets, or maps set
// data onto the packet. Printed in set_target_save_v3's order.
import type { SourceLocation } from '../rules/model';
import { parseUInt } from '../rules/services';
import { RuleError, type OptionUse, type TargetExtension } from './types';
import { collect } from './util/t-options';

export interface SetRef {
  name: string;
  dims: ('src' | 'dst')[];
}

export interface SetTargetOpts {
  add?: SetRef;
  del?: SetRef;
  map?: SetRef;
  exist: boolean;
  timeout?: number;
  mapMark: boolean;
  mapPrio: boolean;
  mapQueue: boolean;
}

const IPSET_MAXNAMELEN = 32;
const IPSET_DIM_MAX = 6;

function setRef(u: OptionUse): SetRef {
  const [name, flags] = u.args;
  const at: SourceLocation = u.argLocs[0] ?? u.loc;
  if (name.length > IPSET_MAXNAMELEN - 1)
    throw new RuleError(`setname \`${name}' too long, max ${IPSET_MAXNAMELEN - 1} characters.`, at);
  const dims = flags.split(',');
  const fat = u.argLocs[1] ?? u.loc;
  if (dims.length > IPSET_DIM_MAX) throw new RuleError(`Can't be more src/dst options than ${IPSET_DIM_MAX}.`, fat);
  for (const d of dims)
    if (d !== 'src' && d !== 'dst')
      throw new RuleError("You must specify (the comma separated list of) 'src' or 'dst'.", fat);
  return { name, dims: dims as ('src' | 'dst')[] };
}

function refText(r: SetRef): string {
  return `${r.name} ${r.dims.join(',')}`;
}

const target: TargetExtension<SetTargetOpts> = {
  kind: 'target',
  name: 'SET',
  options: [
    { name: 'add-set', args: 2 },
    { name: 'del-set', args: 2 },
    { name: 'exist', args: 0 },
    { name: 'timeout', args: 1 },
    { name: 'map-set', args: 2 },
    { name: 'map-mark', args: 0 },
    { name: 'map-prio', args: 0 },
    { name: 'map-queue', args: 0 },
  ],
  terminal: false,
  unsupported:
    'SET needs nfqwall to own the ipset contents (adding and deleting entries as the kernel does), not yet implemented',
  parse(uses, ctx) {
    const seen = collect('SET', uses);
    const o: SetTargetOpts = {
      exist: seen.has('exist'),
      mapMark: seen.has('map-mark'),
      mapPrio: seen.has('map-prio'),
      mapQueue: seen.has('map-queue'),
    };
    const add = seen.get('add-set');
    if (add) o.add = setRef(add);
    const del = seen.get('del-set');
    if (del) o.del = setRef(del);
    const map = seen.get('map-set');
    if (map) o.map = setRef(map);
    if (!o.add && !o.del && !o.map)
      throw new RuleError("You must specify either `--add-set' or `--del-set' or `--map-set'", ctx.loc);
    const t = seen.get('timeout');
    if (t) {
      const v = parseUInt(t.args[0], 0xfffffffe);
      if (v === undefined) throw new RuleError(`SET: bad value for option "--timeout", or out of range (0-4294967294).`, t.argLocs[0] ?? t.loc);
      o.timeout = v;
    }
    return o;
  },
  format(o) {
    const parts: string[] = [];
    if (o.add) parts.push(`--add-set ${refText(o.add)}`);
    if (o.del) parts.push(`--del-set ${refText(o.del)}`);
    if (o.exist) parts.push('--exist');
    if (o.timeout !== undefined) parts.push(`--timeout ${o.timeout}`);
    if (o.map) parts.push(`--map-set ${refText(o.map)}`);
    if (o.mapMark) parts.push('--map-mark');
    if (o.mapPrio) parts.push('--map-prio');
    if (o.mapQueue) parts.push('--map-queue');
    return parts.join(' ');
  },
};

export default target;
