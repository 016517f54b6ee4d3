// Loading for enforcement refuses every rule nfqwall cannot honour, naming the rule, the extension and why: whole
// extensions (`unsupported`) and particular option forms (`unsupportedFor`) alike.
import assert from 'node:assert/strict';
import { checkEnforceable } from '../../src/rules/enforce';
import { RuleErrors } from '../../src/rules/errors';
import { parseRuleset } from '../../src/rules/parse';

function refusals(...lines: string[]): string[] {
  const rs = parseRuleset(`*mangle\n${lines.join('\n')}\nCOMMIT\n`, 'e.rules', { family: 4 });
  try {
    checkEnforceable(rs);
  } catch (e) {
    if (e instanceof RuleErrors) return e.errors.map((x) => x.message);
    throw e;
  }
  return [];
}

describe('rules/enforce', () => {
  it('accepts what the engine implements, including the supported forms of partly supported extensions', () => {
    assert.deepEqual(
      refusals(
        '-A OUTPUT -m set --match-set s src -j ACCEPT',
        '-A OUTPUT -m owner --gid-owner 5 -j ACCEPT',
        '-A OUTPUT -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1400',
        '-A OUTPUT -m bpf --bytecode "1,6 0 0 1" -j ACCEPT',
      ),
      [],
    );
  });

  it('names file:line:column, the extension and the reason of each per-rule refusal', () => {
    const got = refusals(
      '-A OUTPUT -m set --match-set s src --bytes-gt 5 -j ACCEPT',
      '-A OUTPUT -m bpf --object-pinned /sys/fs/bpf/p',
      '-A OUTPUT -m owner --gid-owner 5 --suppl-groups',
      '-A OUTPUT -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu',
      '-A PREROUTING -m socket',
    );
    // Reported chain by chain: order them by line.
    got.sort((a, b) => Number(a.split(':')[1]) - Number(b.split(':')[1]));
    assert.equal(got.length, 5, got.join('\n'));
    assert.match(got[0], /^e\.rules:2:14: match "set" cannot be enforced by nfqwall: set: --packets-\*\/--bytes-\* need/);
    assert.match(got[1], /^e\.rules:3:14: match "bpf" cannot be enforced by nfqwall: bpf: --object-pinned/);
    assert.match(got[2], /^e\.rules:4:14: match "owner" cannot be enforced by nfqwall: owner: --suppl-groups needs/);
    assert.match(got[3], /^e\.rules:5:45: target "TCPMSS" cannot be enforced by nfqwall: /);
    assert.match(got[4], /^e\.rules:6:18: match "socket" cannot be enforced by nfqwall: socket: /);
  });
});
