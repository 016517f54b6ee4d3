// A tiny registry for parser tests, so they do not depend on the real modules' details.
import type { MatchExtension, OptionUse, TargetExtension } from '../../src/extensions/types';
import { RuleError } from '../../src/extensions/types';
import type { ExtensionLookup } from '../../src/rules/parse';
import { quote } from '../../src/rules/quote';
import { parsePort } from '../../src/rules/services';

type PortOpts = { sport?: { port: number; neg: boolean }; dport?: { port: number; neg: boolean } };

function portMatch(name: string, proto: number): MatchExtension<PortOpts> {
  return {
    kind: 'match',
    name,
    protocolMatch: proto,
    options: [
      { name: 'sport', aliases: ['source-port'], args: 1, invertible: true },
      { name: 'dport', aliases: ['destination-port'], args: 1, invertible: true },
    ],
    parse(uses: OptionUse[]): PortOpts {
      const o: PortOpts = {};
      for (const u of uses) {
        let port: number;
        try {
          port = parsePort(u.args[0], name);
        } catch (e) {
          throw new RuleError((e as Error).message, u.argLocs[0]);
        }
        o[u.name as 'sport' | 'dport'] = { port, neg: u.negated };
      }
      return o;
    },
    format(o: PortOpts): string {
      const w: string[] = [];
      if (o.sport) w.push(`${o.sport.neg ? '! ' : ''}--sport ${o.sport.port}`);
      if (o.dport) w.push(`${o.dport.neg ? '! ' : ''}--dport ${o.dport.port}`);
      return w.join(' ');
    },
  };
}

const comment: MatchExtension<string> = {
  kind: 'match',
  name: 'comment',
  options: [{ name: 'comment', args: 1 }],
  parse(uses: OptionUse[], ctx): string {
    if (uses.length !== 1) throw new RuleError('comment: --comment is required', ctx.loc);
    return uses[0].args[0];
  },
  format: (o: string) => `--comment ${quote(o)}`,
};

const icmp6: MatchExtension<null> = {
  kind: 'match',
  name: 'icmp6',
  family: 6,
  protocolMatch: 58,
  options: [{ name: 'icmpv6-type', args: 1, invertible: true }],
  parse: () => null,
  format: () => '',
};

function verdict(name: string): TargetExtension<null> {
  return { kind: 'target', name, terminal: true, options: [], parse: () => null, format: () => '' };
}

const dnat: TargetExtension<string> = {
  kind: 'target',
  name: 'DNAT',
  terminal: true,
  allowed: { tables: ['nat'], hooks: ['PREROUTING', 'OUTPUT'] },
  options: [{ name: 'to-destination', args: 1 }],
  parse(uses: OptionUse[], ctx): string {
    if (uses.length !== 1) throw new RuleError('DNAT: --to-destination is required', ctx.loc);
    return uses[0].args[0];
  },
  format: (o: string) => `--to-destination ${o}`,
};

const tproxy: TargetExtension<null> = {
  ...verdict('TPROXY'),
  unsupported: 'transparent proxying needs the kernel socket lookup',
};

const matches = new Map<string, MatchExtension>(
  [portMatch('tcp', 6), portMatch('udp', 17), comment, icmp6].map((m) => [m.name, m as MatchExtension]),
);
const targets = new Map<string, TargetExtension>(
  [verdict('ACCEPT'), verdict('DROP'), verdict('RETURN'), dnat, tproxy].map((t) => [t.name, t as TargetExtension]),
);

export const FAKE: ExtensionLookup = {
  findMatch: (n) => matches.get(n),
  findTarget: (n) => targets.get(n),
};
