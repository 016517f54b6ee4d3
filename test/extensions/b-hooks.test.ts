import assert from 'node:assert/strict';
import devgroup from '../../src/extensions/devgroup';
import owner from '../../src/extensions/owner';
import policy from '../../src/extensions/policy';
import string from '../../src/extensions/string';
import type { MatchExtension } from '../../src/extensions/types';
import { allowedHooks } from '../../src/extensions/util/b-hooks';
import { ruleUnsupportedReason } from '../../src/extensions/util/b-unsupported';
import bpf from '../../src/extensions/bpf';
import set from '../../src/extensions/set';
import socket from '../../src/extensions/socket';
import type { MatchUse } from '../../src/rules/model';
import { parseCtx, uses } from './b-fixture';

function use<O>(ext: MatchExtension<O>, text: string): MatchUse {
  const pc = parseCtx({ chain: 'USER' });
  return { ext: ext as MatchExtension, opts: ext.parse(uses(ext, text), pc), loc: pc.loc };
}

describe('hooks of part-B matches (for user chains)', () => {
  it('owner runs at OUTPUT and POSTROUTING only', () => {
    assert.deepEqual(allowedHooks(use(owner, '--uid-owner 0')), ['OUTPUT', 'POSTROUTING']);
  });
  it('policy and devgroup depend on their options', () => {
    assert.deepEqual(allowedHooks(use(policy, '--dir in --pol none')), ['PREROUTING', 'INPUT', 'FORWARD']);
    assert.deepEqual(allowedHooks(use(policy, '--dir out --pol none')), ['FORWARD', 'OUTPUT', 'POSTROUTING']);
    assert.deepEqual(allowedHooks(use(devgroup, '--src-group 1 --dst-group 2')), ['FORWARD']);
  });
  it('matches without a restriction say so', () => {
    assert.equal(allowedHooks(use(string, '--algo bm --string x')), undefined);
  });
});

describe('per-rule unsupported reasons of part-B matches', () => {
  it('names set counters, pinned BPF objects and whole unsupported extensions', () => {
    assert.equal(ruleUnsupportedReason(use(set, '--match-set s src')), undefined);
    assert.match(ruleUnsupportedReason(use(set, '--match-set s src --bytes-gt 5')) ?? '', /counters/);
    assert.equal(ruleUnsupportedReason(use(bpf, '--bytecode "1,6 0 0 1"')), undefined);
    assert.match(ruleUnsupportedReason(use(bpf, '--object-pinned /sys/fs/bpf/p')) ?? '', /kernel/);
    assert.match(ruleUnsupportedReason(use(socket, '--transparent')) ?? '', /^socket: /);
    assert.equal(ruleUnsupportedReason(use(owner, '--gid-owner 5')), undefined);
    assert.match(ruleUnsupportedReason(use(owner, '--gid-owner 5 --suppl-groups')) ?? '', /supplementary/);
  });
});
