// Kernel-differential tests of the engine through the daemon: forwarded traffic on the three-host lab.
import assert from 'node:assert/strict';
import { isRoot } from '../../lab/lab';
import { differential, parseSaveCounters, runKernel, type Probe } from './harness';

const FORWARD_RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:WEB - [0:0]
:ICMP - [0:0]
-A FORWARD -p tcp -j WEB
-A FORWARD -p icmp -g ICMP
-A FORWARD -p tcp --sport 80 -j ACCEPT
-A FORWARD -p tcp --sport 8080 -j ACCEPT
-A FORWARD -p udp --dport 53 -j ACCEPT
-A FORWARD -p udp --sport 53 -j ACCEPT
-A WEB -p tcp --dport 22 -j DROP
-A WEB -p tcp --dport 80 -j ACCEPT
-A WEB -p tcp --dport 8080
-A WEB -p tcp --dport 8080 -j RETURN
-A ICMP -p icmp --icmp-type echo-request -j ACCEPT
-A ICMP -p icmp --icmp-type echo-reply -j ACCEPT
COMMIT
`;

// REJECT's replies: fw must send a TCP reset and an ICMP port unreachable, and they cross fw's own OUTPUT hook.
const REJECT_RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p tcp --dport 22 -j REJECT --reject-with tcp-reset
-A FORWARD -p udp --dport 54 -j REJECT
COMMIT
`;

const REJECT_PROBES: Probe[] = [
  { kind: 'tcp', family: 4, port: 22 },
  { kind: 'udp', family: 4, port: 54, count: 2 },
  { kind: 'tcp', family: 4, port: 80 },
];

const PROBES: Probe[] = [
  { kind: 'tcp', family: 4, port: 80 },
  { kind: 'tcp', family: 4, port: 22 },
  { kind: 'tcp', family: 4, port: 8080 },
  { kind: 'tcp', family: 4, port: 443 },
  { kind: 'udp', family: 4, port: 53, count: 3 },
  { kind: 'udp', family: 4, port: 54, count: 2 },
  { kind: 'ping', family: 4, count: 3 },
];

describe('differential: parseSaveCounters', () => {
  it('reads rule and policy counters, numbering rules per chain', () => {
    const c = parseSaveCounters('*filter\n:INPUT DROP [3:180]\n:X - [0:0]\n[1:60] -A INPUT -j X\n[2:120] -A X -j ACCEPT\n[0:0] -A INPUT -j DROP\nCOMMIT\n');
    assert.deepEqual(Object.fromEntries(c), {
      'filter/INPUT/policy': { packets: 3, bytes: 180 },
      'filter/INPUT/#1': { packets: 1, bytes: 60 },
      'filter/X/#1': { packets: 2, bytes: 120 },
      'filter/INPUT/#2': { packets: 0, bytes: 0 },
    });
  });
});

describe('differential: forwarded traffic, kernel iptables vs nfqwall', function () {
  this.timeout(600_000);

  before(function () {
    if (!isRoot()) {
      process.stderr.write('differential: skipping: network-namespace tests need root\n');
      this.skip();
    }
  });

  it('the kernel oracle runs and counts (sanity of the harness itself)', async () => {
    const k = await runKernel(FORWARD_RULES, undefined, PROBES);
    const byName = Object.fromEntries(k.results.map((r) => [r.probe, r.value]));
    assert.equal(byName['tcp v4 :80'], true);
    assert.equal(byName['tcp v4 :22'], false);
    assert.equal(byName['tcp v4 :8080'], false, 'count-only, RETURN, then the DROP policy');
    assert.equal(byName['tcp v4 :443'], false);
    assert.equal(byName['ping v4 x3'], 3);
    assert.ok((k.counters.get('filter/WEB/#1')?.packets ?? 0) >= 1, k.save);
    assert.ok((k.counters.get('filter/FORWARD/policy')?.packets ?? 0) >= 1, k.save);
  });

  it('jump/goto/RETURN/count-only/policy: nfqwall gives the same outcomes and the same per-rule counters', async () => {
    const { diffs, kernel, nfqwall } = await differential(FORWARD_RULES, undefined, PROBES);
    assert.deepEqual(diffs, [], `kernel:\n${kernel.save}\nnfqwall:\n${nfqwall.save}`);
  });

  it('REJECT: the replies reach the client and cross OUTPUT, as the kernel does it', async () => {
    const { diffs, kernel, nfqwall } = await differential(REJECT_RULES, undefined, REJECT_PROBES);
    assert.deepEqual(diffs, [], `kernel:\n${kernel.save}\nnfqwall:\n${nfqwall.save}`);
  });
});
