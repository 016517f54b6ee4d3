// -p names as iptables 1.8.9 prints them (its xtables_chain_protos first, then /etc/protocols) and the implicit
// loading of `-p mh --mh-type`. The kernel agrees: test/rules/findings-kernel.test.ts.
import assert from 'node:assert/strict';
import { RuleErrors } from '../../src/rules/errors';
import { parseRuleset } from '../../src/rules/parse';
import { saveRuleset } from '../../src/rules/save';
import { parseProtocol, protocolName } from '../../src/rules/services';

function saved(line: string, family: 4 | 6): string {
  try {
    const text = saveRuleset(parseRuleset(`*filter\n${line}\nCOMMIT\n`, 'p.rules', { family }));
    return text.split('\n').find((l) => l.startsWith('-A ')) ?? '';
  } catch (e) {
    if (e instanceof RuleErrors) return `refused: ${e.errors[0].reason}`;
    throw e;
  }
}

describe('rules/services: protocol names', () => {
  it('prints 135 as mobility-header and reads all its names', () => {
    assert.equal(protocolName(135), 'mobility-header');
    for (const n of ['mh', 'ipv6-mh', 'mobility-header', 'MH']) assert.equal(parseProtocol(n), 135, n);
    assert.equal(protocolName(58), 'ipv6-icmp');
    assert.equal(protocolName(6), 'tcp');
  });

  it('loads mh implicitly from `-p mh` as written, not from other names of 135', () => {
    assert.equal(saved('-A INPUT -p mh --mh-type 5', 6), '-A INPUT -p mobility-header -m mh --mh-type 5');
    assert.match(saved('-A INPUT -p 135 --mh-type 5', 6), /^refused: unknown option "--mh-type"/);
    assert.match(saved('-A INPUT -p ipv6-mh --mh-type 5', 6), /^refused: unknown option "--mh-type"/);
    assert.match(saved('-A INPUT -p mh --mh-type 5', 4), /^refused: /);
  });
});
