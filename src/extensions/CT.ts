// -j CT (extensions/libxt_CT.c revision 2, net/netfilter/xt_CT.c): raw table only. Options print in the order of
// ct_save_v1; a zone 0 without the mark flag prints nothing, and repeated zone options add their direction flags.
import type { SourceLocation } from '../rules/model';
import { parseUInt } from '../rules/services';
import { RuleError, type TargetExtension } from './types';
import { collect, plainProto } from './util/t-options';

export interface CtOpts {
  notrack: boolean;
  helper?: string;
  timeout?: string;
  ctevents: number;
  expevents: number;
  zone: number;
  zoneMark: boolean;
  zoneOrig: boolean;
  zoneReply: boolean;
}

// ct_event_tbl / exp_event_tbl, in print order; the bit is the IPCT_* / IPEXP_* number.
const CT_EVENTS = ['new', 'related', 'destroy', 'reply', 'assured', 'protoinfo', 'helper', 'mark', 'natseqinfo', 'secmark'];
const EXP_EVENTS = ['new'];

function events(tbl: readonly string[], word: string, loc: SourceLocation): number {
  let mask = 0;
  for (const e of word.split(',')) {
    const i = tbl.indexOf(e);
    if (i < 0) throw new RuleError(`Unknown event type "${e}"`, loc);
    mask |= 1 << i;
  }
  return mask;
}

function printEvents(tbl: readonly string[], mask: number): string {
  return tbl.filter((_, i) => mask & (1 << i)).join(',');
}

/**
 * The CT forms nfqwall's connection table cannot honour. --notrack ignores every other option (xt_ct_tg_check leaves
 * no template), and the event masks only filter ctnetlink events, which nfqwall's table never sends.
 */
export function ctUnsupportedFor(o: CtOpts): string | undefined {
  if (o.notrack) return undefined;
  if (o.helper !== undefined)
    return `CT --helper ${o.helper}: nfqwall's connection table has no helpers (expectations for ftp, sip, ...)`;
  if (o.timeout !== undefined) return `CT --timeout ${o.timeout}: nfqwall's connection table has no timeout policies`;
  if (o.zone !== 0 || o.zoneMark)
    return (
      'CT --zone: nfqwall classifies a packet before raw runs, so a zone chosen in raw cannot select the ' +
      'connection (docs/conntrack-table.md)'
    );
  return undefined;
}

const target: TargetExtension<CtOpts> = {
  kind: 'target',
  name: 'CT',
  options: [
    { name: 'notrack', args: 0 },
    { name: 'helper', args: 1 },
    { name: 'timeout', args: 1 },
    { name: 'ctevents', args: 1 },
    { name: 'expevents', args: 1 },
    { name: 'zone-orig', args: 1 },
    { name: 'zone-reply', args: 1 },
    { name: 'zone', args: 1 },
  ],
  allowed: { tables: ['raw'] },
  terminal: false,
  unsupportedFor: ctUnsupportedFor,
  parse(uses, ctx) {
    collect('CT', uses);
    const o: CtOpts = { notrack: false, ctevents: 0, expevents: 0, zone: 0, zoneMark: false, zoneOrig: false, zoneReply: false };
    for (const u of uses) {
      const at = u.argLocs[0] ?? u.loc;
      switch (u.name) {
        case 'notrack':
          o.notrack = true;
          break;
        case 'helper':
          if (u.args[0].length > 15) throw new RuleError('CT: --helper name is longer than 15 characters', at);
          // The kernel finds the helper by name and layer-4 protocol; without -p there is none (ENOENT).
          if (plainProto(ctx) === undefined || plainProto(ctx) === 0)
            throw new RuleError(`CT: --helper ${u.args[0]} needs -p with the helper's protocol`, u.loc);
          o.helper = u.args[0];
          break;
        case 'timeout':
          if (u.args[0].length > 31) throw new RuleError('CT: --timeout name is longer than 31 characters', at);
          o.timeout = u.args[0];
          break;
        case 'ctevents':
          o.ctevents = events(CT_EVENTS, u.args[0], at);
          break;
        case 'expevents':
          o.expevents = events(EXP_EVENTS, u.args[0], at);
          break;
        default: {
          if (u.name === 'zone-orig') o.zoneOrig = true;
          if (u.name === 'zone-reply') o.zoneReply = true;
          o.zone = 0;
          if (u.args[0].toLowerCase() === 'mark') o.zoneMark = true;
          else {
            const v = parseUInt(u.args[0], 0xffff);
            if (v === undefined) throw new RuleError(`Cannot parse ${u.args[0]} as a zone ID`, at);
            o.zone = v;
          }
        }
      }
    }
    return o;
  },
  format(o) {
    const parts: string[] = [];
    if (o.notrack) parts.push('--notrack');
    if (o.helper) parts.push(`--helper ${o.helper}`);
    if (o.timeout) parts.push(`--timeout ${o.timeout}`);
    if (o.ctevents) parts.push(`--ctevents ${printEvents(CT_EVENTS, o.ctevents)}`);
    if (o.expevents) parts.push(`--expevents ${printEvents(EXP_EVENTS, o.expevents)}`);
    if (o.zoneMark || o.zone) {
      let z = '--zone';
      if (o.zoneOrig && !o.zoneReply) z += '-orig';
      if (o.zoneReply && !o.zoneOrig) z += '-reply';
      parts.push(`${z} ${o.zoneMark ? 'mark' : o.zone}`);
    }
    return parts.join(' ');
  },
  apply(o, ctx) {
    if (o.notrack) ctx.notrack = true;
    return { verdict: 'continue' };
  },
};

export default target;
