// End to end: `nfqwall run` in the fw host of the three-host lab, traffic from client to server through it.
import assert from 'node:assert/strict';
import { assertVerdictedOnce, Daemon, kernelRules, scratchDir, type QueueStatsJson } from './daemon';
import { THREE_HOST as A, threeHostSpec, useLab, type Host } from './lab';
import { ping, tcpConnect, udpExchange } from './traffic';

const ACCEPT_ALL = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -j ACCEPT
COMMIT
`;

const DROP_UDP_5001 = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp -m udp --dport 5001 -j DROP
COMMIT
`;

const QUEUE = 7;

/** Waits until every packet the daemon received has its verdict (the kernel's count settles too). */
/** The queue and its late queue, each with its verdict accounting. */
async function accountedQueues(d: Daemon): Promise<QueueStatsJson[]> {
  const qs = await d.settledQueues();
  assert.deepEqual(qs.map((q) => q.queue), [QUEUE, QUEUE + 1], 'the queue and its late queue');
  assertVerdictedOnce(qs);
  return qs;
}

function hookRules(dump: string): string[] {
  return dump.split('\n').filter((l) => /NFQUEUE|NFQWALL/.test(l));
}

/** One daemon per suite in its own lab; stopped (SIGTERM) after the suite if a test left it running. */
function useDaemon(opts: { rules: string; rules6: string; failOpen?: boolean }): {
  readonly fw: Host;
  readonly client: Host;
  readonly server: Host;
  readonly daemon: Daemon;
} {
  const env = useLab(threeHostSpec);
  let daemon: Daemon | undefined;
  let scratch: ReturnType<typeof scratchDir> | undefined;
  before(async function () {
    this.timeout(60_000);
    scratch = scratchDir();
    daemon = await Daemon.start(env.lab.host('fw'), `${scratch.dir}/control.sock`, {
      rules: scratch.write('rules.v4', opts.rules),
      rules6: scratch.write('rules.v6', opts.rules6),
      queue: QUEUE,
      failOpen: opts.failOpen === true,
    });
  });
  after(async function () {
    this.timeout(30_000);
    if (daemon?.running === true) await daemon.stop('SIGTERM');
    scratch?.cleanup();
  });
  return {
    get fw() {
      return env.lab.host('fw');
    },
    get client() {
      return env.lab.host('client');
    },
    get server() {
      return env.lab.host('server');
    },
    get daemon() {
      if (daemon === undefined) throw new Error('daemon not started');
      return daemon;
    },
  };
}

describe('nfqwall run (lab)', function () {
  this.timeout(60_000);

  describe('accept-all ruleset', () => {
    const t = useDaemon({ rules: ACCEPT_ALL, rules6: ACCEPT_ALL });

    it('installs its hook rules in NFQWALL chains', async () => {
      const lines = hookRules(await kernelRules(t.fw));
      assert.ok(lines.some((l) => /NFQWALL/.test(l)), `no NFQWALL chain in fw:\n${lines.join('\n')}`);
      assert.ok(lines.some((l) => /-j NFQUEUE/.test(l)), `no NFQUEUE rule in fw:\n${lines.join('\n')}`);
    });

    it('forwards ping, a UDP exchange and a TCP connection, v4 and v6', async () => {
      assert.equal(await ping(t.client, A.server4, 3), 3, 'ping v4');
      assert.equal(await ping(t.client, A.server6, 3), 3, 'ping v6');
      assert.equal(await udpExchange(t.client, t.server, A.server4, 5000, 20), 20, 'udp v4');
      assert.equal(await udpExchange(t.client, t.server, A.server6, 5000, 20), 20, 'udp v6');
      assert.equal(await tcpConnect(t.client, t.server, A.server4, 5002), true, 'tcp v4');
      assert.equal(await tcpConnect(t.client, t.server, A.server6, 5002), true, 'tcp v6');
    });

    it('verdicts every queued packet exactly once', async () => {
      const qs = await accountedQueues(t.daemon);
      assert.deepEqual(qs.map((q) => q.dropped), [0, 0], `accept-all dropped packets: ${JSON.stringify(qs)}`);
      // At least the forwarded UDP datagrams and their replies went through PREROUTING's queue (2 x 20, v4 and v6).
      assert.ok(qs[0]!.received >= 80, `too few packets queued: ${JSON.stringify(qs)}`);
    });

    it('removes every hook rule on SIGTERM', async () => {
      const end = await t.daemon.stop('SIGTERM');
      assert.equal(end.timedOut, false, `nfqwall did not exit within 10 s of SIGTERM:\n${t.daemon.output}`);
      assert.equal(end.code, 0, `nfqwall exit after SIGTERM:\n${t.daemon.output}`);
      const left = hookRules(await kernelRules(t.fw));
      assert.deepEqual(left, [], 'hook rules left in fw after SIGTERM');
      assert.equal(await ping(t.client, A.server4, 2), 2, 'forwarding without nfqwall');
    });
  });

  describe('a DROP rule', () => {
    const t = useDaemon({ rules: DROP_UDP_5001, rules6: DROP_UDP_5001 });
    const N = 20;

    it('drops UDP to port 5001 only, v4 and v6', async () => {
      assert.equal(await udpExchange(t.client, t.server, A.server4, 5001, N, 1_000), 0, 'udp v4 5001 dropped');
      assert.equal(await udpExchange(t.client, t.server, A.server6, 5001, N, 1_000), 0, 'udp v6 5001 dropped');
      assert.equal(await udpExchange(t.client, t.server, A.server4, 5000, N), N, 'udp v4 5000 passes');
      assert.equal(await udpExchange(t.client, t.server, A.server6, 5000, N), N, 'udp v6 5000 passes');
      assert.equal(await tcpConnect(t.client, t.server, A.server4, 5001), true, 'tcp v4 5001 passes');
      assert.equal(await ping(t.client, A.server4, 2), 2, 'ping v4 passes');
    });

    it('counts exactly those drops, and every packet once', async () => {
      const qs = await accountedQueues(t.daemon);
      // The DROP rule is in FORWARD, whose trips are the late queue's.
      assert.deepEqual(qs.map((q) => q.dropped), [0, 2 * N], `dropped == the UDP 5001 datagrams sent: ${JSON.stringify(qs)}`);
    });

    it('removes every hook rule on SIGTERM', async () => {
      const end = await t.daemon.stop('SIGTERM');
      assert.equal(end.timedOut, false, `nfqwall did not exit within 10 s of SIGTERM:\n${t.daemon.output}`);
      assert.deepEqual(hookRules(await kernelRules(t.fw)), [], 'hook rules left in fw after SIGTERM');
    });
  });

  describe('--fail-open', () => {
    const t = useDaemon({ rules: ACCEPT_ALL, rules6: ACCEPT_ALL, failOpen: true });

    it('keeps forwarding after the daemon is SIGKILLed (its rules stay, with --queue-bypass)', async () => {
      assert.equal(await ping(t.client, A.server4, 2), 2, 'before the kill');
      await t.daemon.stop('SIGKILL');
      const lines = hookRules(await kernelRules(t.fw));
      assert.ok(lines.some((l) => /-j NFQUEUE.*--queue-bypass/.test(l)), `no bypassing NFQUEUE rule left:\n${lines.join('\n')}`);
      assert.equal(await ping(t.client, A.server4, 3), 3, 'ping v4 after the kill');
      assert.equal(await ping(t.client, A.server6, 3), 3, 'ping v6 after the kill');
      assert.equal(await udpExchange(t.client, t.server, A.server4, 5000, 20), 20, 'udp after the kill');
      assert.equal(await tcpConnect(t.client, t.server, A.server4, 5002), true, 'tcp after the kill');
    });
  });

  describe('fail-closed (default)', () => {
    const t = useDaemon({ rules: ACCEPT_ALL, rules6: ACCEPT_ALL });

    it('stops forwarding after the daemon is SIGKILLed', async () => {
      assert.equal(await ping(t.client, A.server4, 2), 2, 'before the kill');
      await t.daemon.stop('SIGKILL');
      const lines = hookRules(await kernelRules(t.fw));
      assert.ok(lines.some((l) => /-j NFQUEUE/.test(l)), `no NFQUEUE rule left after SIGKILL:\n${lines.join('\n')}`);
      assert.ok(!lines.some((l) => /--queue-bypass/.test(l)), `fail-closed rules must not bypass:\n${lines.join('\n')}`);
      assert.equal(await ping(t.client, A.server4, 3, { waitS: 0.5 }), 0, 'ping v4 after the kill');
      assert.equal(await ping(t.client, A.server6, 3, { waitS: 0.5 }), 0, 'ping v6 after the kill');
      assert.equal(await udpExchange(t.client, t.server, A.server4, 5000, 20, 1_000), 0, 'udp after the kill');
    });
  });
});
