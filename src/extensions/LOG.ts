// -j LOG (extensions/libxt_LOG.c, net/netfilter/xt_LOG.c): a kernel log line per packet, then the next rule.
// Any table and hook. The default level (4, warning) is not printed; the prefix holds at most 29 characters
// (char prefix[30]) and iptables cuts a longer one short rather than refusing it.
import { formatLogLine } from '../engine/logformat';
import { quote } from '../rules/quote';
import { parseUInt } from '../rules/services';
import { RuleError, type TargetExtension } from './types';
import { collect } from './util/t-options';

export interface LogOpts {
  prefix: string;
  level: number;
  tcpSequence: boolean;
  tcpOptions: boolean;
  ipOptions: boolean;
  uid: boolean;
  macDecode: boolean;
}

const LEVELS: Readonly<Record<string, number>> = {
  alert: 1,
  crit: 2,
  debug: 7,
  emerg: 0,
  error: 3,
  info: 6,
  notice: 5,
  panic: 0,
  warning: 4,
};

const FLAGS = ['log-tcp-sequence', 'log-tcp-options', 'log-ip-options', 'log-uid', 'log-macdecode'] as const;
export const LOG_PREFIX_MAX = 29;

const target: TargetExtension<LogOpts> = {
  kind: 'target',
  name: 'LOG',
  options: [
    { name: 'log-level', args: 1 },
    { name: 'log-prefix', args: 1 },
    ...FLAGS.map((name) => ({ name, args: 0 as const })),
  ],
  terminal: false,
  parse(uses) {
    const seen = collect('LOG', uses);
    const o: LogOpts = {
      prefix: '',
      level: 4,
      tcpSequence: seen.has('log-tcp-sequence'),
      tcpOptions: seen.has('log-tcp-options'),
      ipOptions: seen.has('log-ip-options'),
      uid: seen.has('log-uid'),
      macDecode: seen.has('log-macdecode'),
    };
    const lv = seen.get('log-level');
    if (lv) {
      const w = lv.args[0];
      const n = parseUInt(w, 7) ?? LEVELS[w];
      if (n === undefined) throw new RuleError(`log level "${w}" unknown`, lv.argLocs[0] ?? lv.loc);
      o.level = n;
    }
    const px = seen.get('log-prefix');
    if (px) {
      const p = px.args[0];
      const at = px.argLocs[0] ?? px.loc;
      if (p.length === 0) throw new RuleError('Argument must have a minimum length of 1 characters', at);
      if (p.includes('\n')) throw new RuleError('Newlines not allowed in --log-prefix', at);
      o.prefix = p.slice(0, LOG_PREFIX_MAX);
    }
    return o;
  },
  format(o) {
    const parts: string[] = [];
    if (o.prefix) parts.push(`--log-prefix ${quote(o.prefix)}`);
    if (o.level !== 4) parts.push(`--log-level ${o.level}`);
    if (o.tcpSequence) parts.push('--log-tcp-sequence');
    if (o.tcpOptions) parts.push('--log-tcp-options');
    if (o.ipOptions) parts.push('--log-ip-options');
    if (o.uid) parts.push('--log-uid');
    if (o.macDecode) parts.push('--log-macdecode');
    return parts.join(' ');
  },
  apply(o, ctx) {
    const line = formatLogLine(ctx.pkt, ctx.meta, {
      prefix: o.prefix,
      tcpSequence: o.tcpSequence,
      tcpOptions: o.tcpOptions,
      ipOptions: o.ipOptions,
      uid: o.uid,
      macDecode: o.macDecode,
    });
    ctx.logs.push({ kind: 'LOG', line, level: o.level });
    return { verdict: 'continue' };
  },
};

export default target;
