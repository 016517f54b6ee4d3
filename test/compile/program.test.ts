// The program compiler (src/compile/program.ts) and the native loader (native/matcher.cc): corrupt, truncated and
// out-of-range programs are refused with a message and never crash; small hand-made rulesets decide as expected;
// keyed chains are looked up; counters reach drain() under the program's serial.
import assert from 'node:assert/strict';
import { compileProgram } from '../../src/compile/program';
import { MAGIC, NONE } from '../../src/compile/ops/format';
import { craftPacket } from '../../src/engine/craft';
import type { PacketInput } from '../../src/engine/decision';
import type { ConnInfo, CtState } from '../../src/extensions/types';
import type { Hook } from '../../src/rules/model';
import { parseIpAddr } from '../../src/rules/addr';
import { parseRuleset } from '../../src/rules/parse';
import { addon, NF_ACCEPT, NF_DROP, NF_QUEUE } from '../../src/native';
import { Rng } from '../rng';
import { newTally, Pair } from './matcher-harness';

const SMALL = `*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i eth0 -p udp -m udp --dport 53 -j MARK --set-xmark 0x7/0xff
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 198.18.5.5/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.18.6.6:8080
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:U0 - [0:0]
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -m mark --mark 0x7/0xff -j U0
-A INPUT -p tcp -m multiport --dports 22,80:90 -j ACCEPT
-A U0 -s 198.19.0.0/16 -j NFQUEUE --queue-num 9
-A U0 -j RETURN
COMMIT
`;

function addr(s: string): Uint8Array {
  return parseIpAddr(s, s.includes(':') ? 6 : 4)!;
}

function packet(o: {
  hook: Hook;
  src?: string;
  dst?: string;
  proto?: number;
  dport?: number;
  inIface?: string;
  outIface?: string;
  mark?: number;
  state?: CtState;
  status?: number;
}): PacketInput {
  const src = addr(o.src ?? '198.19.0.1');
  const dst = addr(o.dst ?? '198.18.0.1');
  const family = src.length === 4 ? 4 : 6;
  const data = craftPacket({ family, src, dst, proto: o.proto ?? 6, sport: 40000, dport: o.dport ?? 80, tcpFlags: 2 });
  const t = { src, dst, protocol: o.proto ?? 6, sport: 40000, dport: o.dport ?? 80 };
  const ct: ConnInfo | undefined =
    o.state === undefined
      ? undefined
      : { state: o.state, status: o.status ?? 0, mark: 0, direction: 'ORIGINAL', orig: t, reply: t, expiresSeconds: 30, zone: 0 };
  return { family, data, meta: { hook: o.hook, inIface: o.inIface, outIface: o.outIface, mark: o.mark ?? 0, pktType: 'unicast' }, ct };
}

describe('matcher: programs', () => {
  const small = compileProgram(parseRuleset(SMALL, 'small.rules', { family: 4 }), 4);

  describe('the loader refuses what is not a valid program, with a message', () => {
    const refuse = (words: Uint32Array, pattern: RegExp): void => {
      const m = new addon.Matcher();
      assert.throws(() => m.load(4, words, 1), (e: Error) => {
        assert.match(e.message, /^Matcher\.load: /);
        assert.match(e.message, pattern);
        return true;
      });
    };
    const edit = (f: (w: Uint32Array) => void): Uint32Array => {
      const w = small.words.slice();
      f(w);
      return w;
    };
    /** Word offset of chain k's record, and of its first rule's record. */
    const chainAt = (w: Uint32Array, k: number): number => {
      let pos = 6;
      for (let h = 0; h < 5; h++) pos += 1 + 3 * w[pos];
      return w[pos + k];
    };

    it('accepts the compiled program', () => {
      new addon.Matcher().load(4, small.words, 1);
      assert.equal(small.words[0], MAGIC);
    });
    it('empty, bad magic, version, family and word count', () => {
      refuse(new Uint32Array(0), /too short/);
      refuse(edit((w) => (w[0] = 0x12345678)), /magic/);
      refuse(edit((w) => (w[1] = 99)), /version 99/);
      refuse(edit((w) => (w[2] = 5)), /family 5/);
      refuse(small.words.subarray(0, small.words.length - 1), /word count/);
      assert.throws(() => new addon.Matcher().load(6, small.words, 1), /program is for IPv4/);
    });
    it('truncated anywhere (the word count made to agree): refused, never read past the end', () => {
      for (let n = 6; n < small.words.length; n++) {
        const w = small.words.slice(0, n);
        w[5] = n;
        refuse(w, /./);
      }
    });
    it('counter ids, chain references, opcodes and op lengths out of range', () => {
      const c0 = chainAt(small.words, 0);
      refuse(edit((w) => (w[3] = 0)), /counter/);
      refuse(edit((w) => (w[7] = 4)), /not a built-in chain|out of range|hook/);
      refuse(edit((w) => (w[c0] = 9)), /bad chain header/);
      refuse(edit((w) => (w[c0 + 3] = NONE)), /policy counter/);
      const r0 = small.words[c0 + 6];
      refuse(edit((w) => (w[r0 + 1] = 10_000)), /rule counter out of range/);
      refuse(edit((w) => (w[r0 + 2] = 1 << 20)), /bad rule flags/);
      refuse(edit((w) => (w[r0] = 1_000_000)), /offset or length/);
      // The mangle rule: counter, flags (-i -p), -i name (4 words), -p, op count, then its udp op.
      const op = r0 + 3 + 4 + 1 + 1;
      refuse(edit((w) => (w[op] = 77)), /bad opcode 77/);
      refuse(edit((w) => (w[op + 1] = 3)), /has 3 words|length/);
    });
    it('a jump to a chain that does not exist, or across tables', () => {
      const text = '*filter\n:INPUT ACCEPT [0:0]\n:U0 - [0:0]\n-A INPUT -j U0\nCOMMIT\n*mangle\n:INPUT ACCEPT [0:0]\nCOMMIT\n';
      const p = compileProgram(parseRuleset(text, 'j.rules', { family: 4 }), 4);
      const w = p.words;
      let pos = 6;
      const inputHook = 6 + 1 + 3 * w[6]; // hook 1's entries follow hook 0's
      assert.equal(w[inputHook], 2, 'INPUT passes mangle and filter');
      const filterIndex = w[inputHook + 1 + 3 + 1];
      for (let h = 0; h < 5; h++) pos += 1 + 3 * w[pos];
      // The filter INPUT chain's only rule ends with its target [JUMP, chain, 0].
      const filterInput = w[pos + filterIndex];
      const rule = w[filterInput + 6];
      const tgt = rule + w[rule] - 3;
      assert.equal(w[tgt], 4, 'a JUMP target');
      const bad = w.slice();
      bad[tgt + 1] = 50;
      refuse(bad, /jump to chain 50 out of range/);
      const across = w.slice();
      across[tgt + 1] = w[inputHook + 2]; // the mangle INPUT chain
      refuse(across, /jump across tables/);
    });
    it('random corruption of a real program: refused or loaded, and a loaded one runs without crashing', () => {
      const rng = new Rng(99);
      let refused = 0;
      const pkt = packet({ hook: 'INPUT', inIface: 'eth0', state: 'NEW' });
      for (let k = 0; k < 3000; k++) {
        const w = small.words.slice();
        for (let j = rng.int(1, 3); j > 0; j--) {
          const at = rng.int(6, w.length - 1);
          w[at] = rng.chance(0.5) ? rng.int(0, 40) : rng.int(0, 0xffffffff);
        }
        const m = new addon.Matcher();
        try {
          m.load(4, w, 1);
        } catch (e) {
          assert.match((e as Error).message, /^Matcher\.load: ./);
          refused++;
          continue;
        }
        for (const hook of [0, 1, 2, 3, 4]) m.run({ data: pkt.data, family: 4, hook, inIf: 1, ct: { state: 1, dir: 0, status: 0, mark: 0 } });
      }
      assert.ok(refused > 500, `only ${refused} of 3000 corrupt programs were refused`);
    });
  });

  describe('hand-made rulesets decide as the engine does', () => {
    const rules = parseRuleset(SMALL, 'small.rules', { family: 4 });
    const pair = new Pair(rules, ['eth0', 'eth1']);
    const run = (p: PacketInput) => {
      const t = newTally();
      const diff = pair.check(p, t, 'small');
      assert.equal(diff, undefined);
      return pair.matcher.run(pair.input(p));
    };
    it("ESTABLISHED is accepted by the first filter rule; the path holds mangle INPUT's policy and that rule", () => {
      const r = run(packet({ hook: 'INPUT', state: 'ESTABLISHED' }));
      assert.ok(r);
      assert.equal(r.verdict, NF_ACCEPT);
      assert.deepEqual(
        r.path.map((id) => pair.counters[id]),
        [rules.tables.get('mangle')!.chains.get('INPUT')!.counters, rules.tables.get('filter')!.chains.get('INPUT')!.rules[0].counters],
      );
    });
    it('a mark set in mangle PREROUTING is seen by the mark match in filter INPUT: NFQUEUE 9 from the user chain', () => {
      // Two hooks: the mark the first leaves is the input mark of the next.
      const pre = run(packet({ hook: 'PREROUTING', proto: 17, dport: 53, inIface: 'eth0', state: 'ESTABLISHED' }));
      assert.ok(pre);
      assert.equal(pre.mark, 7);
      assert.equal(pre.setMark, true);
      assert.equal(pre.natRan, 0, 'nat runs for the first packet only');
      const r = run(packet({ hook: 'INPUT', proto: 17, dport: 53, mark: 7, state: 'NEW' }));
      assert.ok(r);
      assert.equal(r.verdict, (NF_QUEUE | (9 << 16)) >>> 0);
      assert.equal(r.natRan, 0, 'filter queued the packet before nat INPUT (the last table of the hook) could run');
      const accepted = run(packet({ hook: 'INPUT', proto: 6, dport: 22, state: 'NEW' }));
      assert.ok(accepted);
      assert.equal(accepted.natRan, 1, 'nat INPUT ran for a NEW connection (SRC manip) and bound nothing');
    });
    it('a NEW packet that reaches the DNAT rule gets its request; one that does not is decided without one', () => {
      const dnat = run(packet({ hook: 'PREROUTING', dst: '198.18.5.5', dport: 80, inIface: 'eth1', state: 'NEW' }));
      assert.ok(dnat);
      assert.equal(dnat.verdict, NF_ACCEPT);
      assert.equal(dnat.natRan, 2);
      assert.deepEqual(dnat.nat, [{ manip: 'DST', minAddr: '198.18.6.6', maxAddr: '198.18.6.6', minPort: 8080, maxPort: 8080 }]);
      const r = run(packet({ hook: 'PREROUTING', dst: '198.18.5.5', dport: 81, inIface: 'eth1', state: 'NEW' }));
      assert.ok(r);
      assert.equal(r.natRan, 2, 'PREROUTING nat ran (DST manip) and bound nothing');
      const done = run(packet({ hook: 'PREROUTING', dst: '198.18.5.5', dport: 80, inIface: 'eth1', state: 'NEW', status: 0x100 }));
      assert.ok(done, 'DST_NAT_DONE: the nat chain does not run again');
      assert.equal(done.natRan, 0);
    });
    it('the policy: DROP with the policy counter on the path', () => {
      const r = run(packet({ hook: 'INPUT', dport: 443, state: 'NEW' }));
      assert.ok(r);
      assert.equal(r.verdict, NF_DROP);
      assert.equal(pair.counters[r.path[r.path.length - 1]], rules.tables.get('filter')!.chains.get('INPUT')!.counters);
    });
    it('an untracked queue with a conntrack match on the way is left to JavaScript', () => {
      assert.equal(run(packet({ hook: 'INPUT' })), null);
    });
  });

  describe('keyed chains', () => {
    const N = 2000;
    const lines = ['*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]', ':SVC - [0:0]'];
    lines.push('-A PREROUTING -j SVC');
    for (let k = 0; k < N; k++)
      lines.push(`-A SVC -d 198.18.${k >> 8}.${k & 255}/32 -p tcp -m comment --comment "svc ${k}" -m tcp --dport ${80 + (k % 3)} -j MARK --set-xmark ${k}/0xffffffff`);
    lines.push('-A SVC -m addrtype --dst-type LOCAL -j MARK --set-xmark 0x99999/0xffffffff', 'COMMIT', '');
    const rules = parseRuleset(lines.join('\n'), 'svc.rules', { family: 4 });
    const pair = new Pair(rules);
    it('a packet to one service matches that rule only, as the engine', () => {
      const svc = rules.tables.get('nat')!.chains.get('SVC')!;
      for (const k of [0, 2, 777, N - 1]) {
        // (198.18.0.1 is a LOCAL address of the harness host: the last rule would mark it)
        const p = packet({ hook: 'PREROUTING', dst: `198.18.${k >> 8}.${k & 255}`, dport: 80 + (k % 3), state: 'NEW' });
        const t = newTally();
        assert.equal(pair.check(p, t, `svc ${k}`), undefined);
        const r = pair.matcher.run(pair.input(p));
        assert.ok(r);
        assert.equal(r.mark, k);
        assert.equal(r.setMark, k !== 0);
        assert.ok(r.path.map((id) => pair.counters[id]).includes(svc.rules[k].counters));
      }
      const local = pair.matcher.run(pair.input(packet({ hook: 'PREROUTING', dst: '198.18.0.1', dport: 9, state: 'NEW' })));
      assert.ok(local);
      assert.equal(local.mark, 0x99999, '198.18.0.1 is LOCAL (harness host) and no service port matched');
    });
    it('counts committed decisions into drain() under the serial; a replaced program is drained once more, then done', () => {
      const m = new addon.Matcher();
      const p = compileProgram(rules, 4);
      m.load(4, p.words, 41);
      const data = packet({ hook: 'PREROUTING', dst: '198.18.3.7', dport: 80 + ((3 * 256 + 7) % 3) }).data;
      const input = { data, family: 4 as const, hook: 0, ct: { state: 1, dir: 0, status: 0, mark: 0 } };
      for (let k = 0; k < 3; k++) assert.ok(m.run(input, true));
      assert.equal(m.run({ ...input, data: data.subarray(0, 10) }, true), null);
      assert.deepEqual(m.stats(), { decided: 3, slow: 1 });
      const d = m.drain();
      const ids = [...d.ids];
      assert.ok(d.serials.every((s) => s === 41));
      const svcRule = p.counters.indexOf(rules.tables.get('nat')!.chains.get('SVC')!.rules[3 * 256 + 7].counters);
      assert.ok(ids.includes(svcRule), `drained ${ids} lacks the service rule ${svcRule}`);
      assert.equal(d.packets[ids.indexOf(svcRule)], 3);
      assert.equal(d.bytes[ids.indexOf(svcRule)], 3 * data.length);
      assert.equal(m.drain().ids.length, 0, 'zeroed as read');
      m.run(input, true);
      m.load(4, p.words, 42);
      const last = m.drain();
      assert.ok([...last.serials].includes(41));
      assert.deepEqual(last.done, [41]);
      assert.equal(m.drain().done.length, 0);
    });
  });

  describe('the host', () => {
    const text = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m addrtype --dst-type LOCAL -j MARK --set-xmark 0x1/0x1
-A INPUT -m addrtype ! --src-type LOCAL -j MARK --set-xmark 0x2/0x2
-A FORWARD -i eth9 -j DROP
-A FORWARD -o veth+ -j ACCEPT
COMMIT
`;
    const rules = parseRuleset(text, 'host.rules', { family: 4 });
    it('addrtype LOCAL follows the longest route: a LOCAL prefix, a BROADCAST route inside it, special ranges', () => {
      const pair = new Pair(rules, [], [
        { dst: '127.0.0.0/8', type: 'LOCAL' },
        { dst: '127.255.255.255', type: 'BROADCAST' },
        { dst: '198.18.0.0/24', type: 'UNREACHABLE' },
      ]);
      const marks: number[] = [];
      for (const dst of ['127.0.0.1', '127.3.4.5', '127.255.255.255', '198.18.0.1', '198.18.0.9', '198.18.1.7', '224.0.0.1', '0.1.2.3', '255.255.255.255', '203.0.113.1']) {
        for (const src of ['198.19.0.1', '127.0.0.7']) {
          const p = packet({ hook: 'INPUT', src, dst, state: 'ESTABLISHED' });
          const t = newTally();
          assert.equal(pair.check(p, t, `${src} -> ${dst}`), undefined);
          assert.equal(t.decided, 1, `${src} -> ${dst} decided natively`);
          marks.push(pair.matcher.run(pair.input(p))!.mark);
        }
      }
      // Both LOCAL and not LOCAL destinations and sources occurred (the comparison saw both answers).
      assert.deepEqual([...new Set(marks)].sort(), [0, 1, 2, 3]);
    });
    it('an interface with no known name goes to JavaScript when a rule asks for it, and only then', () => {
      const pair = new Pair(rules, ['eth0', 'veth1']);
      const known = pair.input(packet({ hook: 'FORWARD', inIface: 'eth0', state: 'ESTABLISHED' }));
      assert.ok(pair.matcher.run({ ...known, outIf: 2 }), 'eth0 -> veth1: decided');
      assert.equal(pair.matcher.run({ ...known, inIf: 77 }), null, 'in: ifindex 77 has no name, -i eth9 asks');
      const input = pair.matcher.run({ ...known, hook: 1, inIf: 77 });
      assert.ok(input, 'INPUT asks no interface');
    });
  });

  describe('statistic random and the NAT targets', () => {
    const text = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:SVC - [0:0]
-A PREROUTING -d 198.18.5.5/32 -p tcp -m tcp --dport 80 -j SVC
-A PREROUTING -p tcp -m tcp --dport 81 -j REDIRECT --to-ports 8081
-A SVC -p tcp -m statistic --mode random --probability 0.25000000000 -j DNAT --to-destination 198.19.0.1:8080
-A SVC -p tcp -m statistic --mode random ! --probability 0.50000000000 -j DNAT --to-destination 198.19.0.2-198.19.0.9:8000-8100/8050 --random --persistent
-A SVC -j DNAT --to-destination 198.19.0.3
-A OUTPUT -d 198.18.5.5/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.19.0.4:8080
-A POSTROUTING -p tcp -m mark --mark 0x4000/0x4000 -j MASQUERADE --to-ports 1024-2047 --random-fully
-A POSTROUTING -o eth0 -j NETMAP --to 198.18.64.0/24
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -d 198.19.0.4/32 -p tcp -m tcp --dport 8080 -j MARK --set-xmark 0x1/0x1
COMMIT
`;
    const rules = parseRuleset(text, 'nat.rules', { family: 4 });
    const pair = new Pair(rules, ['eth0', 'eth1', 'veth1']);
    const decide = (p: PacketInput, random: number[]) => {
      const t = newTally();
      assert.equal(pair.check(p, t, 'nat'), undefined);
      assert.equal(t.decided, 1, 'decided natively');
      return pair.matcher.run({ ...pair.input(p), random })!;
    };
    const svc = packet({ hook: 'PREROUTING', dst: '198.18.5.5', dport: 80, inIface: 'eth1', state: 'NEW' });
    it('statistic draws one number per rule it reaches and compares it with lround(2^31 p)', () => {
      const quarter = 0x20000000;
      const first = decide(svc, [quarter - 1]);
      assert.equal(first.draws, 1);
      assert.deepEqual(first.nat, [{ manip: 'DST', minAddr: '198.19.0.1', maxAddr: '198.19.0.1', minPort: 8080, maxPort: 8080 }]);
      // quarter is not below the stored 0.25; the inverted 0.5 matches a number at or above 2^30.
      const second = decide(svc, [quarter, 0x40000000]);
      assert.equal(second.draws, 2);
      assert.deepEqual(second.nat, [
        { manip: 'DST', minAddr: '198.19.0.2', maxAddr: '198.19.0.9', minPort: 8000, maxPort: 8100, basePort: 8050, random: true, persistent: true },
      ]);
      const third = decide(svc, [quarter, 0x3fffffff]);
      assert.equal(third.draws, 2);
      assert.deepEqual(third.nat, [{ manip: 'DST', minAddr: '198.19.0.3', maxAddr: '198.19.0.3' }]);
      // Only the low 31 bits count, as the kernel's prandom_u32() & 0x7fffffff.
      assert.equal(decide(svc, [0x80000000 + quarter - 1]).nat![0].minAddr, '198.19.0.1');
      // Without numbers given, the thread's generator draws: every endpoint is picked some time.
      const picked = new Set<string>();
      for (let k = 0; k < 200; k++) picked.add(pair.matcher.run(pair.input(svc))!.nat![0].minAddr!);
      assert.deepEqual([...picked].sort(), ['198.19.0.1', '198.19.0.2', '198.19.0.3']);
    });
    it('REDIRECT takes the in interface primary address; without one it drops', () => {
      const r = decide(packet({ hook: 'PREROUTING', dst: '198.18.7.7', dport: 81, inIface: 'eth1', state: 'NEW' }), []);
      assert.deepEqual(r.nat, [{ manip: 'DST', minAddr: '198.18.1.7', maxAddr: '198.18.1.7', minPort: 8081, maxPort: 8081 }]);
      const none = decide(packet({ hook: 'PREROUTING', dst: '198.18.7.7', dport: 81, inIface: 'veth1', state: 'NEW' }), []);
      assert.equal(none.verdict, NF_DROP);
      assert.equal(none.nat, undefined);
      assert.equal(none.natRan, 2);
    });
    it('MASQUERADE binds the out interface (masqIfindex); NETMAP maps by hook; nothing when SRC_NAT_DONE', () => {
      const masq = decide(packet({ hook: 'POSTROUTING', dst: '198.19.0.1', mark: 0x4000, outIface: 'eth0', state: 'NEW' }), []);
      assert.deepEqual(masq.nat, [{ manip: 'SRC', minAddr: '198.18.0.1', maxAddr: '198.18.0.1', minPort: 1024, maxPort: 2047, randomFully: true, masqIfindex: 1 }]);
      const netmap = decide(packet({ hook: 'POSTROUTING', dst: '198.19.0.1', outIface: 'eth0', state: 'NEW' }), []);
      assert.deepEqual(netmap.nat, [{ manip: 'SRC', minAddr: '198.18.64.0', maxAddr: '198.18.64.255', netmap: true }]);
      const done = decide(packet({ hook: 'POSTROUTING', dst: '198.19.0.1', mark: 0x4000, outIface: 'eth0', state: 'NEW', status: 0x80 }), []);
      assert.equal(done.nat, undefined);
      assert.equal(done.natRan, 0);
    });
    it("OUTPUT's filter sees the packet as DNAT to one endpoint rewrites it (natView)", () => {
      const r = decide(packet({ hook: 'OUTPUT', dst: '198.18.5.5', dport: 80, state: 'NEW' }), []);
      assert.equal(r.nat![0].minAddr, '198.19.0.4');
      assert.equal(r.mark, 1, 'filter OUTPUT matched the rewritten destination and port');
    });
    it('a caller that does not take the requests (takesNat false) gets JavaScript for a trip that binds, only', () => {
      assert.equal(pair.matcher.run({ ...pair.input(svc), takesNat: false }), null);
      const other = pair.matcher.run({ ...pair.input(packet({ hook: 'PREROUTING', dst: '198.18.5.6', dport: 80, inIface: 'eth1', state: 'NEW' })), takesNat: false });
      assert.ok(other, 'no NAT target reached: decided');
      assert.equal(other.natRan, 2);
    });
    it('MASQUERADE and REDIRECT go to JavaScript when the host view has no primary addresses', () => {
      const m = new addon.Matcher();
      m.load(4, pair.words, 1);
      m.setHost({ names: [undefined, 'eth0', 'eth1'] });
      const masq = pair.input(packet({ hook: 'POSTROUTING', dst: '198.19.0.1', mark: 0x4000, outIface: 'eth0', state: 'NEW' }));
      assert.equal(m.run(masq), null);
      assert.ok(m.run({ ...masq, mark: 0 }), 'NETMAP needs no interface address');
    });
    it('the loader refuses a NAT target with a bad request', () => {
      const w = pair.words;
      // The first DNAT target: [NAT, how, 13, manip, flags, ...]; find it by its kind and length words.
      let at = -1;
      for (let k = 6; k + 3 < w.length && at < 0; k++) if ((w[k] & 0xffff) === 9 && w[k + 1] === 0 && w[k + 2] === 13 && w[k + 3] === 1) at = k;
      assert.ok(at > 0, 'found the DNAT target');
      const bad = (f: (x: Uint32Array) => void): void => {
        const x = w.slice();
        f(x);
        assert.throws(() => new addon.Matcher().load(4, x, 1), /bad NAT/);
      };
      bad((x) => (x[at + 1] = 3));
      bad((x) => (x[at + 2] = 12));
      bad((x) => (x[at + 3] = 5));
      bad((x) => (x[at + 4] = 1 << 9));
      bad((x) => (x[at + 13] = 70000));
    });
  });
});
