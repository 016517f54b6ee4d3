// `ip monitor link address route` lines as events (src/daemon/ipmonitor.ts): the daemon forgets MASQUERADE bindings
// on the link-down and address-removed ones, as the kernel's netdevice and inetaddr notifiers do. The lines are what
// iproute2 6.1 printed in a lab namespace for `ip link set down/up`, `ip addr add/del` and `ip link add/del`, in
// its one-line form (`-o`) and as the daemon reads it (an event's first line, then indented continuation lines).
import assert from 'node:assert/strict';
import { IpMonitor, parseMonitorLine, type IpEvent } from '../../src/daemon/ipmonitor';

const LINES: [string, IpEvent | undefined][] = [
  [
    '3: d0@d0p: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN group default \\    link/ether 16:5b:08:ff:76:25 brd ff:ff:ff:ff:ff:ff',
    { kind: 'link', ifindex: 3, ifname: 'd0', up: false, deleted: false },
  ],
  [
    '3: d0@d0p: <NO-CARRIER,BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state LOWERLAYERDOWN group default \\    link/ether 16:5b:08:ff:76:25 brd ff:ff:ff:ff:ff:ff',
    { kind: 'link', ifindex: 3, ifname: 'd0', up: true, deleted: false },
  ],
  [
    '12: to-server: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default',
    { kind: 'link', ifindex: 12, ifname: 'to-server', up: true, deleted: false },
  ],
  [
    'Deleted 5: d1@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether 36:60:db:7a:36:86 brd ff:ff:ff:ff:ff:ff',
    { kind: 'link', ifindex: 5, ifname: 'd1', up: false, deleted: true },
  ],
  [
    '3: d0    inet 198.18.9.5/24 scope global secondary d0\\       valid_lft forever preferred_lft forever',
    { kind: 'address', ifindex: 3, ifname: 'd0', family: 4, address: '198.18.9.5', deleted: false },
  ],
  [
    'Deleted 3: d0    inet 198.18.9.1/24 scope global d0\\       valid_lft forever preferred_lft forever',
    { kind: 'address', ifindex: 3, ifname: 'd0', family: 4, address: '198.18.9.1', deleted: true },
  ],
  [
    'Deleted 3: d0    inet6 2001:db8:9::1/64 scope global nodad \\       valid_lft forever preferred_lft forever',
    { kind: 'address', ifindex: 3, ifname: 'd0', family: 6, address: '2001:db8:9::1', deleted: true },
  ],
  [
    '7: ppp0    inet 198.18.3.1 peer 198.18.3.2/32 scope global ppp0',
    { kind: 'address', ifindex: 7, ifname: 'ppp0', family: 4, address: '198.18.3.1', deleted: false },
  ],
  ['    link/ether 16:5b:08:ff:76:25 brd ff:ff:ff:ff:ff:ff', undefined],
  ['       valid_lft forever preferred_lft forever', undefined],
  ['Deleted local 198.18.9.5 dev d0 table local proto kernel scope host src 198.18.9.1 ', undefined],
  ['198.18.9.0/24 dev d0 proto kernel scope link src 198.18.9.1 ', undefined],
  ['Deleted fe80::/64 dev d0 proto kernel metric 256 pref medium', undefined],
  ['multicast ff00::/8 dev d0 table local proto kernel metric 256 pref medium', undefined],
];

describe('daemon/ipmonitor: link and address events', () => {
  for (const [line, want] of LINES) {
    it(`${want === undefined ? 'ignores' : `reads ${want.kind === 'address' ? 'an' : 'a'} ${want.kind} event from`} ${JSON.stringify(line.slice(0, 50))}`, () => {
      assert.deepEqual(parseMonitorLine(line), want);
    });
  }

  it('reports every event as it comes, also across chunks that split a line, and still debounces onChange', async () => {
    const events: IpEvent[] = [];
    let changes = 0;
    // Two writes that cut the second line in the middle of its flags, a pause longer than the debounce, one more.
    const script = [
      "printf '3: d0@d0p: <BROADCAST,MULTICAST> mtu 1500\\n4: d1@d1p: <BROADCAST,MULT'",
      'sleep 0.1',
      "printf 'ICAST,UP> mtu 1500\\n198.18.9.0/24 dev d0 proto kernel\\n'",
      'sleep 0.4',
      "printf 'Deleted 3: d0    inet 198.18.9.1/24 scope global d0\\n'",
      'exec sleep 30',
    ].join('; ');
    const m = new IpMonitor(() => changes++, { debounceMs: 200, argv: ['sh', '-c', script], onEvent: (e) => events.push(e) });
    try {
      const deadline = Date.now() + 5_000;
      while (events.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(events, [
        { kind: 'link', ifindex: 3, ifname: 'd0', up: false, deleted: false },
        { kind: 'link', ifindex: 4, ifname: 'd1', up: true, deleted: false },
        { kind: 'address', ifindex: 3, ifname: 'd0', family: 4, address: '198.18.9.1', deleted: true },
      ]);
      assert.equal(m.events, 4, 'four lines, the route line included');
      assert.equal(changes, 2, 'one debounced change per burst');
    } finally {
      m.close();
    }
  });

  it('a throwing event handler is reported, and the monitor goes on', async () => {
    const errors: string[] = [];
    const seen: number[] = [];
    const script = "printf '3: a: <UP> mtu 1\\n4: b: <UP> mtu 1\\n'; exec sleep 30";
    const m = new IpMonitor(() => undefined, {
      argv: ['sh', '-c', script],
      onEvent: (e) => {
        if (e.kind === 'link') seen.push(e.ifindex);
        if (seen.length === 1) throw new Error('handler failed');
      },
      onError: (msg) => errors.push(msg),
    });
    try {
      const deadline = Date.now() + 5_000;
      while (seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(seen, [3, 4]);
      assert.equal(errors.length, 1);
      assert.match(errors[0]!, /handler failed/);
    } finally {
      m.close();
    }
  });
});
