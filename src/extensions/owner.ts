// -m owner: the local socket's owner (xt_owner). Only OUTPUT and POSTROUTING have a local socket.
import { readFileSync } from 'node:fs';
import type { MatchExtension, OptionUse } from './types';
import { fail, failArg, parseUintWord } from './util/b-opts';

export interface IdRange {
  min: number;
  max: number;
  invert: boolean;
}

export interface OwnerOptions {
  uid?: IdRange;
  gid?: IdRange;
  /** --socket-exists; invert: `! --socket-exists`. */
  socket?: { invert: boolean };
  supplGroups: boolean;
}

function lookupName(file: string, name: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 3) return Number(f[2]);
  }
  return undefined;
}

/** owner_parse_range: a name, or N, or N-M / N:M, each at most UINT32_MAX-1. */
function parseIds(use: OptionUse, file: string): IdRange {
  const word = use.args[0] ?? '';
  const bad = (): never => failArg(use, `owner: Bad value for "--${use.name}" option: "${word}"`);
  const byName = lookupName(file, word);
  if (byName !== undefined && Number.isInteger(byName)) return { min: byName, max: byName, invert: use.negated };
  const m = /^([^-:]+)(?:[-:](.+))?$/.exec(word);
  if (!m) bad();
  const lo = parseUintWord(m![1]!, 0xfffffffe);
  const hi = m![2] === undefined ? lo : parseUintWord(m![2], 0xfffffffe);
  if (lo === undefined || hi === undefined) bad();
  if (hi! < lo!) fail(use, `owner: range ${lo}-${hi} is empty (the kernel refuses this rule: Invalid argument)`);
  return { min: lo!, max: hi!, invert: use.negated };
}

function fmtRange(r: IdRange): string {
  return r.min === r.max ? String(r.min) : `${r.min}-${r.max}`;
}

const owner: MatchExtension<OwnerOptions> = {
  kind: 'match',
  name: 'owner',
  options: [
    { name: 'uid-owner', args: 1, invertible: true },
    { name: 'gid-owner', args: 1, invertible: true },
    { name: 'socket-exists', args: 0, invertible: true },
    { name: 'suppl-groups', args: 0 },
  ],
  parse(uses) {
    const o: OwnerOptions = { supplGroups: false };
    for (const u of uses) {
      if (u.name === 'uid-owner') o.uid = parseIds(u, '/etc/passwd');
      else if (u.name === 'gid-owner') o.gid = parseIds(u, '/etc/group');
      else if (u.name === 'socket-exists') o.socket = { invert: u.negated };
      else if (u.name === 'suppl-groups') {
        if (!o.gid) fail(u, 'owner: Bad value for "--suppl-groups" option: "you need to use --gid-owner first"');
        o.supplGroups = true;
      }
    }
    return o;
  },
  // owner_mt_reg .hooks: a local socket exists only on the way out.
  allowedHooks: () => ['OUTPUT', 'POSTROUTING'],
  unsupportedFor: (o) =>
    o.supplGroups
      ? 'owner: --suppl-groups needs the supplementary groups of the socket owner, which the queue does not report'
      : undefined,
  format(o) {
    const w: string[] = [];
    if (o.socket) w.push(...(o.socket.invert ? ['!'] : []), '--socket-exists');
    if (o.uid) w.push(...(o.uid.invert ? ['!'] : []), '--uid-owner', fmtRange(o.uid));
    if (o.gid) w.push(...(o.gid.invert ? ['!'] : []), '--gid-owner', fmtRange(o.gid));
    if (o.supplGroups) w.push('--suppl-groups');
    return w.join(' ');
  },
  match(o, ctx) {
    // owner_mt: without a socket (uid unknown) the rule matches only when every option given is negated.
    const { uid, gid } = ctx.meta;
    const hasSocket = uid !== undefined || gid !== undefined;
    if (!hasSocket) return [o.socket, o.uid, o.gid].every((x) => x === undefined || x.invert);
    if (o.socket && o.socket.invert) return false;
    if (o.uid) {
      const inRange = uid !== undefined && uid >= o.uid.min && uid <= o.uid.max;
      if (inRange === o.uid.invert) return false;
    }
    if (o.gid) {
      // Supplementary groups are not reported by the queue: only the primary gid is compared.
      const inRange = gid !== undefined && gid >= o.gid.min && gid <= o.gid.max;
      if (inRange === o.gid.invert) return false;
    }
    return true;
  },
};

export default owner;
