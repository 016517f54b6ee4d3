// -m set: membership of the packet in an ipset (xt_set, revision 4 as iptables 1.8.9 uses it).
import type { MatchExtension, OptionUse } from './types';
import { RuleError } from './types';
import { fail, failArg } from './util/b-opts';

type Cmp = 'eq' | 'lt' | 'gt';

export interface SetOptions {
  name: string;
  dims: ('src' | 'dst')[];
  invert: boolean;
  returnNomatch: boolean;
  updateCounters: boolean; // default true; `! --update-counters` clears it
  updateSubcounters: boolean;
  packets?: { op: Cmp; value: number; invert: boolean };
  bytes?: { op: Cmp; value: number; invert: boolean };
}

const IPSET_DIM_MAX = 6;

function counter(use: OptionUse, op: Cmp) {
  // XTTYPE_UINT64
  const word = use.args[0] ?? '';
  if (!/^(0x[0-9a-f]+|[0-9]+)$/i.test(word)) failArg(use, `set: bad value for option "--${use.name}"`);
  return { op, value: Number(BigInt(word)), invert: use.negated };
}

const set: MatchExtension<SetOptions> = {
  kind: 'match',
  name: 'set',
  options: [
    { name: 'match-set', aliases: ['set'], args: 2, invertible: true },
    { name: 'return-nomatch', args: 0 },
    { name: 'update-counters', args: 0, invertible: true },
    { name: 'update-subcounters', args: 0, invertible: true },
    { name: 'packets-eq', args: 1, invertible: true },
    { name: 'packets-lt', args: 1 },
    { name: 'packets-gt', args: 1 },
    { name: 'bytes-eq', args: 1, invertible: true },
    { name: 'bytes-lt', args: 1 },
    { name: 'bytes-gt', args: 1 },
  ],
  parse(uses, ctx) {
    let o: SetOptions | undefined;
    let returnNomatch = false;
    let updateCounters = true;
    let updateSubcounters = true;
    let packets: SetOptions['packets'];
    let bytes: SetOptions['bytes'];
    for (const u of uses) {
      switch (u.name) {
        case 'match-set': {
          if (o) fail(u, 'set: --match-set can be specified only once');
          const name = u.args[0] ?? '';
          if (name.length === 0 || name.length >= 32) failArg(u, `set: setname \`${name}' too long, max 31 characters`);
          const flags = u.args[1] ?? '';
          const parts = flags.split(',');
          if (parts.length > IPSET_DIM_MAX) failArg(u, "set: Can't be more src/dst options than 6.", 1);
          const dims = parts.map((p) => {
            if (p !== 'src' && p !== 'dst')
              failArg(u, "set: You must specify (the comma separated list of) 'src' or 'dst'.", 1);
            return p as 'src' | 'dst';
          });
          o = { name, dims, invert: u.negated, returnNomatch, updateCounters, updateSubcounters };
          break;
        }
        case 'return-nomatch':
          returnNomatch = true;
          break;
        case 'update-counters':
          updateCounters = !u.negated;
          break;
        case 'update-subcounters':
          updateSubcounters = !u.negated;
          break;
        case 'packets-eq':
          packets = counter(u, 'eq');
          break;
        case 'packets-lt':
          packets = counter(u, 'lt');
          break;
        case 'packets-gt':
          packets = counter(u, 'gt');
          break;
        case 'bytes-eq':
          bytes = counter(u, 'eq');
          break;
        case 'bytes-lt':
          bytes = counter(u, 'lt');
          break;
        case 'bytes-gt':
          bytes = counter(u, 'gt');
          break;
      }
    }
    if (!o) throw new RuleError("set: You must specify `--match-set' with proper arguments", ctx.loc);
    o.returnNomatch = returnNomatch;
    o.updateCounters = updateCounters;
    o.updateSubcounters = updateSubcounters;
    if (packets) o.packets = packets;
    if (bytes) o.bytes = bytes;
    return o;
  },
  unsupportedFor: (o) => unsupportedReason(o),
  format(o) {
    // set_save_v4 / print_match
    const w: string[] = [];
    if (o.invert) w.push('!');
    w.push('--match-set', o.name, o.dims.join(','));
    if (o.returnNomatch) w.push('--return-nomatch');
    if (!o.updateCounters) w.push('!', '--update-counters');
    if (!o.updateSubcounters) w.push('!', '--update-subcounters');
    for (const [label, c] of [
      ['packets', o.packets],
      ['bytes', o.bytes],
    ] as const) {
      if (!c) continue;
      if (c.invert) w.push('!');
      w.push(`--${label}-${c.op}`, String(c.value));
    }
    return w.join(' ');
  },
  match(o, ctx) {
    const r = ctx.sets.test(o.name, ctx.pkt, ctx.meta, o.dims);
    // A missing set cannot happen in the kernel (the rule would not load); treat it as no match.
    // Set counters (--packets-*/--bytes-*) are not kept by SetView: enforcement refuses those rules (unsupportedFor).
    const member = r === true;
    return member !== o.invert;
  },
};

/** Rules using set counters cannot be honoured: SetView keeps no per-element counters. */
export function unsupportedReason(o: SetOptions): string | undefined {
  if (o.packets || o.bytes)
    return 'set: --packets-*/--bytes-* need per-element ipset counters, which nfqwall does not keep';
  return undefined;
}

export default set;
