// Hook skipping for segmentation-offloaded TCP packets (root only; docs/flow-cache.md, Trips). A bulk transfer from
// client to server through fw travels in GSO packets of up to 64 KiB (TSO and GSO are on on veth by default, and veth
// passes them whole). The kernel forwards such a packet when each of its segments fits the output MTU
// (ip_exceeds_mtu); the queue does not say how large the segments are, so nfqwall bounds them by the MSS the receiver
// announced in its SYN. Two labs: with every MTU 1500 the offloaded packets skip FORWARD and POSTROUTING (their
// segments fit); with fw's link to the server at 1400, below what the server's MSS allows, none of them may skip,
// and the kernel drops the first ones (DF set) until the sender learns the path MTU. In both, fw's FORWARD must count
// exactly the packets the server's own kernel counts from fw: a packet skipped past a check the kernel would have
// failed would be counted at FORWARD and never arrive.
import assert from 'node:assert/strict';
import { controlRequest } from '../../src/daemon/control';
import { offloadsOn, tcpTransfer } from '../lab/bulk';
import { commentCount, countsByComment } from '../lab/counters';
import { Daemon, scratchDir } from '../lab/daemon';
import { skipBecause, THREE_HOST as A, threeHostSpec, useLab } from '../lab/lab';

const QUEUE = 20;
const LATE_QUEUE = QUEUE + 1;
const PORT = 9000;
const BYTES = 32 * 1024 * 1024;

const FW_RULES = `*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o to-server -p tcp -m comment --comment post-out
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -i to-client -o to-server -p tcp -m tcp --dport ${PORT} -m comment --comment fwd-out -j ACCEPT
-A FORWARD -i to-server -o to-client -p tcp -m tcp --sport ${PORT} -m comment --comment fwd-back -j ACCEPT
-A FORWARD -p icmp -m comment --comment fwd-icmp -j ACCEPT
COMMIT
`;

// The server's own kernel counts what reaches it from fw: all, and what only a GSO packet can be (over `big`).
function serverRules(big: number): string {
  const fromFw = `-A INPUT -s ${A.client4}/32 -i to-fw -p tcp -m tcp --dport ${PORT}`;
  return `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
${fromFw} -m comment --comment srv-all
${fromFw} -m length --length ${big + 1}:65535 -m comment --comment srv-big
COMMIT
`;
}

interface Result {
  /** fw's FORWARD counted towards the server, and the server's kernel counted from fw: all, and the large ones. */
  fwdOut: number;
  postOut: number;
  serverAll: number;
  serverBig: number;
  /** Trips to the late queue (INPUT, FORWARD, POSTROUTING) during the transfer. */
  lateTrips: number;
  skipped: number;
}

for (const { mtu, skips } of [
  { mtu: 1500, skips: true },
  { mtu: 1400, skips: false },
]) {
  describe(`flow cache: offloaded TCP packets through fw, its link to the server at MTU ${mtu}`, function () {
    this.timeout(180_000);
    const env = useLab(threeHostSpec);
    const scratch = scratchDir();
    after(() => scratch.cleanup());
    let daemon: Daemon | undefined;
    let result: Result | undefined;

    before(async function () {
      skipBecause(this, 'skip gso', await offloadsOn(env.lab, 'skip gso'));
      const fw = env.lab.host('fw');
      const server = env.lab.host('server');
      // Only fw's side: the server still announces the MSS of its own 1500-byte link.
      await fw.exec(['ip', 'link', 'set', 'dev', 'to-server', 'mtu', String(mtu)]);
      await server.exec(['iptables-restore'], { input: serverRules(mtu) });
      const rules = scratch.write('fw.rules', FW_RULES);
      const config = scratch.write('nfqwall.conf', `queue = ${QUEUE}\nmetrics = off\n`);
      daemon = await Daemon.start(fw, scratch.dir + '/control.sock', { rules, config });
    });

    after(async () => {
      await daemon?.stop();
    });

    const late = async (): Promise<number> => (await daemon!.status()).queues.find((q) => q.queue === LATE_QUEUE)?.received ?? NaN;
    const skippedTrips = async (): Promise<number> => (await daemon!.flowCacheStats()).tripsSkipped;

    it('the transfer arrives intact', async () => {
      const lateBefore = await late();
      const skippedBefore = await skippedTrips();
      const t = await tcpTransfer(env.lab.host('client'), env.lab.host('server'), {
        addr: A.server4,
        port: PORT,
        listenPort: PORT,
        bytes: BYTES,
        timeoutMs: 60_000,
      });
      assert.match(t.sent, /^sent \d+ [0-9a-f]{64}$/, `sender: ${t.sent}`);
      assert.equal(t.got.replace(/^got/, 'sent'), t.sent, 'the server got every byte sent, unchanged');
      await daemon!.settled(5_000);
      const fw = countsByComment(((await controlRequest(daemon!.control, { cmd: 'save', counters: true })) as unknown as { rulesets: { ipv4: string } }).rulesets.ipv4);
      const server = countsByComment((await env.lab.host('server').exec(['iptables-save', '-c', '-t', 'filter'])).stdout);
      result = {
        fwdOut: commentCount(fw, 'fwd-out', 'fw'),
        postOut: commentCount(fw, 'post-out', 'fw'),
        serverAll: commentCount(server, 'srv-all', 'the server'),
        serverBig: commentCount(server, 'srv-big', 'the server'),
        lateTrips: (await late()) - lateBefore,
        skipped: (await skippedTrips()) - skippedBefore,
      };
      process.stderr.write(`      MTU ${mtu}: ${JSON.stringify(result)}\n`);
    });

    it("FORWARD and POSTROUTING count exactly the packets the server's kernel counts from fw", () => {
      assert.ok(result, 'the transfer ran');
      assert.ok(result.serverBig > 0, `offloaded packets (over ${mtu} bytes) crossed fw: ${JSON.stringify(result)}`);
      assert.equal(result.fwdOut, result.serverAll, `FORWARD counted what reached the server: ${JSON.stringify(result)}`);
      // POSTROUTING also counts the SYN's and the ACKs' trips towards the server; the server counts them too.
      assert.equal(result.postOut, result.serverAll, `POSTROUTING counted what reached the server: ${JSON.stringify(result)}`);
    });

    if (skips) {
      it('the offloaded packets skip FORWARD and POSTROUTING: their segments fit', () => {
        assert.ok(result, 'the transfer ran');
        // Each offloaded packet that kept its trips would have made two to the late queue.
        assert.ok(result.lateTrips < result.serverBig, `${result.lateTrips} late trips for ${result.serverBig} offloaded packets`);
        assert.ok(result.skipped >= result.serverBig, `${result.skipped} trips skipped for ${result.serverBig} offloaded packets`);
      });
    } else {
      it("no offloaded packet skips: the server's MSS makes segments larger than fw's link to it", () => {
        assert.ok(result, 'the transfer ran');
        // Every packet longer than the link's MTU is offloaded, and makes its FORWARD and POSTROUTING trips.
        assert.ok(result.lateTrips >= 2 * result.serverBig, `${result.lateTrips} late trips for ${result.serverBig} offloaded packets`);
      });
    }
  });
}
