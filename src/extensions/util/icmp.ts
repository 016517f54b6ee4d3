// ICMP / ICMPv6 type names and `type[/code]` parsing as libipt_icmp.c and libip6t_icmp6.c do it: a name matches by
// case-insensitive prefix (an ambiguous prefix is refused), otherwise a number with an optional /code.
import type { OptionUse } from '../types';
import { badArg, parseUintWord } from './opts';

export interface IcmpCodeName {
  name: string;
  type: number;
  codeMin: number;
  codeMax: number;
}

export interface IcmpSpec {
  type: number;
  codeMin: number;
  codeMax: number;
}

const n = (name: string, type: number, codeMin: number, codeMax: number): IcmpCodeName => ({ name, type, codeMin, codeMax });

export const ICMP_NAMES: readonly IcmpCodeName[] = [
  n('any', 0xff, 0, 0xff),
  n('echo-reply', 0, 0, 0xff),
  n('pong', 0, 0, 0xff),
  n('destination-unreachable', 3, 0, 0xff),
  n('network-unreachable', 3, 0, 0),
  n('host-unreachable', 3, 1, 1),
  n('protocol-unreachable', 3, 2, 2),
  n('port-unreachable', 3, 3, 3),
  n('fragmentation-needed', 3, 4, 4),
  n('source-route-failed', 3, 5, 5),
  n('network-unknown', 3, 6, 6),
  n('host-unknown', 3, 7, 7),
  n('network-prohibited', 3, 9, 9),
  n('host-prohibited', 3, 10, 10),
  n('TOS-network-unreachable', 3, 11, 11),
  n('TOS-host-unreachable', 3, 12, 12),
  n('communication-prohibited', 3, 13, 13),
  n('host-precedence-violation', 3, 14, 14),
  n('precedence-cutoff', 3, 15, 15),
  n('source-quench', 4, 0, 0xff),
  n('redirect', 5, 0, 0xff),
  n('network-redirect', 5, 0, 0),
  n('host-redirect', 5, 1, 1),
  n('TOS-network-redirect', 5, 2, 2),
  n('TOS-host-redirect', 5, 3, 3),
  n('echo-request', 8, 0, 0xff),
  n('ping', 8, 0, 0xff),
  n('router-advertisement', 9, 0, 0xff),
  n('router-solicitation', 10, 0, 0xff),
  n('time-exceeded', 11, 0, 0xff),
  n('ttl-exceeded', 11, 0, 0xff),
  n('ttl-zero-during-transit', 11, 0, 0),
  n('ttl-zero-during-reassembly', 11, 1, 1),
  n('parameter-problem', 12, 0, 0xff),
  n('ip-header-bad', 12, 0, 0),
  n('required-option-missing', 12, 1, 1),
  n('timestamp-request', 13, 0, 0xff),
  n('timestamp-reply', 14, 0, 0xff),
  n('address-mask-request', 17, 0, 0xff),
  n('address-mask-reply', 18, 0, 0xff),
];

export const ICMP6_NAMES: readonly IcmpCodeName[] = [
  n('destination-unreachable', 1, 0, 0xff),
  n('no-route', 1, 0, 0),
  n('communication-prohibited', 1, 1, 1),
  n('beyond-scope', 1, 2, 2),
  n('address-unreachable', 1, 3, 3),
  n('port-unreachable', 1, 4, 4),
  n('failed-policy', 1, 5, 5),
  n('reject-route', 1, 6, 6),
  n('packet-too-big', 2, 0, 0xff),
  n('time-exceeded', 3, 0, 0xff),
  n('ttl-exceeded', 3, 0, 0xff),
  n('ttl-zero-during-transit', 3, 0, 0),
  n('ttl-zero-during-reassembly', 3, 1, 1),
  n('parameter-problem', 4, 0, 0xff),
  n('bad-header', 4, 0, 0),
  n('unknown-header-type', 4, 1, 1),
  n('unknown-option', 4, 2, 2),
  n('echo-request', 128, 0, 0xff),
  n('ping', 128, 0, 0xff),
  n('echo-reply', 129, 0, 0xff),
  n('pong', 129, 0, 0xff),
  n('router-solicitation', 133, 0, 0xff),
  n('router-advertisement', 134, 0, 0xff),
  n('neighbour-solicitation', 135, 0, 0xff),
  n('neighbor-solicitation', 135, 0, 0xff),
  n('neighbour-advertisement', 136, 0, 0xff),
  n('neighbor-advertisement', 136, 0, 0xff),
  n('redirect', 137, 0, 0xff),
];

/** Parse `--icmp-type` / `--icmpv6-type`'s argument. `what` is "ICMP" or "ICMPv6" for the messages. */
export function parseIcmpType(use: OptionUse, names: readonly IcmpCodeName[], what: string): IcmpSpec {
  const word = use.args[0] ?? '';
  let found: IcmpCodeName | undefined;
  for (const c of names) {
    if (word.length > 0 && c.name.toLowerCase().startsWith(word.toLowerCase())) {
      if (found) badArg(use, `Ambiguous ${what} type \`${word}': \`${found.name}' or \`${c.name}'?`);
      found = c;
    }
  }
  if (found) return { type: found.type, codeMin: found.codeMin, codeMax: found.codeMax };
  const slash = word.indexOf('/');
  const t = slash >= 0 ? word.slice(0, slash) : word;
  const type = parseUintWord(t, 255);
  if (type === undefined) badArg(use, `Unknown ${what} type \`${t}'`);
  if (slash < 0) return { type, codeMin: 0, codeMax: 0xff };
  // `type/code` or `type/min:max`; iptables-save prints only the minimum back.
  const codes = word.slice(slash + 1);
  const colon = codes.indexOf(':');
  const min = parseUintWord(colon < 0 ? codes : codes.slice(0, colon), 255);
  const max = colon < 0 ? min : parseUintWord(codes.slice(colon + 1), 255);
  if (min === undefined || max === undefined) badArg(use, `Unknown ${what} code \`${word}'`);
  return { type, codeMin: min, codeMax: max };
}

/** `type` or `type/code`, as icmp_save / icmp6_save print it (a full code range is left out). */
export function formatIcmpType(s: IcmpSpec): string {
  return s.codeMin === 0 && s.codeMax === 0xff ? `${s.type}` : `${s.type}/${s.codeMin}`;
}
