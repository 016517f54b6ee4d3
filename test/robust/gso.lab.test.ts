// GSO packets larger than the MTU through nfqwall's queue (root; issue #9, hostile packets). The daemon binds its
// queue with NFQA_CFG_F_GSO (native QueueOptions.gso, default true), so the kernel hands over a TCP sender's GSO
// packets whole: up to 64 KiB, flagged GSO, the transport checksum partial. A bulk transfer from client to server
// through fw, with DNAT from a service address and MASQUERADE out (the native NAT path rewrites every packet), and
// then with a mangle rewrite of every packet too (TTL, DSCP, TCPMSS on the SYN: the JavaScript payload path, which
// completes the partial checksum over the whole 64 KiB), must arrive intact. Each run is made once against the
// kernel's own rules on fw and once with nfqwall on fw, each in a fresh lab, as test/robust/netfaults.lab.test.ts
// does; the fates and the counter identities must agree, and nfqwall must account for every queued id.
//
// Large packets are seen on the wire between namespaces because veth passes a GSO skb to its peer unsegmented (TSO
// and GSO are on on veth by default; checked with ethtool where it is installed). The server counts what it receives
// with its own kernel rules, which are the same in both modes: what fw's FORWARD counted towards it must equal what
// the server's INPUT counted from it, big packets included, since nothing between the two resegments or drops.
import assert from 'node:assert/strict';
import { offloadsOn, tcpTransfer } from '../lab/bulk';
import { commentCount as count, countsByComment } from '../lab/counters';
import { cliPath, Daemon, scratchDir, sleep, type QueueStatsJson } from '../lab/daemon';
import { Lab, skipBecause, skipUnlessRoot, THREE_HOST as A, threeHostSpec } from '../lab/lab';

const QUEUE = 19;
const VERBOSE = process.env['NFQW_VERBOSE'] === '1';
const SERVICE = '198.18.100.1';
const SERVICE_PORT = 8000;
const SERVER_PORT = 9000;
const BYTES = 4 * 1024 * 1024;
/** Longer than any Ethernet MTU the lab has (1500): only a GSO packet can be this long on a veth. */
const BIG = '1501:65535';
type Mode = 'kernel' | 'nfqwall';

const MANGLE = `*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A FORWARD -j TTL --ttl-set 33
-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1200
-A FORWARD -j DSCP --set-dscp 0x0a
COMMIT
`;

function fwRules(mangle: boolean): string {
  return `${mangle ? MANGLE : ''}*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d ${SERVICE}/32 -p tcp -m tcp --dport ${SERVICE_PORT} -j DNAT --to-destination ${A.server4}:${SERVER_PORT}
-A POSTROUTING -o to-server -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -i to-client -o to-server -p tcp -m comment --comment fw-all
-A FORWARD -i to-client -o to-server -p tcp -m length --length ${BIG} -m comment --comment fw-big
COMMIT
`;
}

// The server's own kernel counts what reaches it from fw (MASQUERADEd to fw's address, DNATed to its port).
const FROM_FW = `-A INPUT -s ${A.fwServer4}/32 -i to-fw -p tcp -m tcp --dport ${SERVER_PORT}`;
const SERVER_RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
${FROM_FW} -m comment --comment srv-all
${FROM_FW} -m length --length ${BIG} -m comment --comment srv-big
${FROM_FW} -m ttl --ttl-eq 33 -m dscp --dscp 0x0a -m comment --comment srv-rewritten
${FROM_FW} -m length --length ${BIG} -m ttl --ttl-eq 33 -m dscp --dscp 0x0a -m comment --comment srv-big-rewritten
-A INPUT -s ${A.fwServer4}/32 -i to-fw -p tcp -m tcp --dport ${SERVER_PORT} --tcp-flags SYN,RST SYN -m tcpmss --mss 1200 -m comment --comment srv-syn-mss1200
COMMIT
`;

/** What must be the same whoever filters on fw. */
interface Fates {
  delivered: boolean;
  /** fw's FORWARD counted packets longer than the MTU towards the server. */
  fwSawBig: boolean;
  /** The server's INPUT counted the same packets, and as many large ones, as fw's FORWARD passed to it. */
  serverGotWhatFwCounted: boolean;
  serverGotBig: boolean;
  /** Every packet (and every large one) reached the server with TTL 33 and DSCP 10. */
  everyPacketRewritten: boolean;
  everyBigPacketRewritten: boolean;
  /** The SYN reached the server with MSS 1200. */
  synClamped: boolean;
}

interface Run {
  fates: Fates;
  detail: string;
  /** nfqwall only: its accounting problems (empty when every id got one verdict). */
  accounting: string[];
}

/** nfqwall's self-accounting: one verdict per kernel id, nothing defaulted, overloaded, refused or failed. */
async function accounting(d: Daemon): Promise<string[]> {
  let problems: string[] = [];
  for (let attempt = 0; attempt < 25; attempt++) {
    problems = [];
    if (!d.running) return [`nfqwall exited:\n${d.output.slice(-4000)}`];
    const s = await d.status();
    const packets = s['packets'] as Record<string, number | undefined>;
    for (const q of s.queues as (QueueStatsJson & Record<string, number | undefined>)[]) {
      if (q.received !== q.accepted + q.dropped) problems.push(`queue ${q.queue}: received ${q.received} != accepted ${q.accepted} + dropped ${q.dropped}`);
      if (q.kernelIdSequence !== q.received) problems.push(`queue ${q.queue}: kernel id sequence ${q.kernelIdSequence} != received ${q.received}`);
      if (q.kernelQueueTotal !== 0) problems.push(`queue ${q.queue}: ${q.kernelQueueTotal} packets still in the kernel queue`);
      for (const k of ['defaulted', 'overload', 'ctDropped', 'kernelQueueDropped', 'kernelUserDropped', 'enobufs', 'errors'] as const) {
        if ((q[k] ?? 0) !== 0) problems.push(`queue ${q.queue}: ${k} ${q[k]}`);
      }
      if (q.dropped !== 0) problems.push(`queue ${q.queue}: ${q.dropped} dropped (no rule drops)`);
    }
    if (s.queues.every((q) => q.received === 0)) problems.push('nfqwall received nothing');
    for (const k of ['rewriteTruncated', 'errors', 'ctTableFull'] as const) {
      if ((packets[k] ?? 0) !== 0) problems.push(`packets.${k} ${packets[k]}`);
    }
    if (problems.length === 0) return [];
    if (attempt === 24) problems.push(`status: ${JSON.stringify({ queues: s.queues, packets })}`);
    await sleep(200);
  }
  return problems;
}

async function run(mode: Mode, mangle: boolean, ctx: Mocha.Context): Promise<Run> {
  const lab = await Lab.create(threeHostSpec());
  const scratch = scratchDir();
  let daemon: Daemon | undefined;
  try {
    skipBecause(ctx, 'robust gso', await offloadsOn(lab, 'robust gso'));
    const fw = lab.host('fw');
    const client = lab.host('client');
    const server = lab.host('server');
    await client.exec(['ip', 'route', 'add', `${SERVICE}/32`, 'via', A.fwClient4]);
    await server.exec(['iptables-restore'], { input: SERVER_RULES });
    const rules = fwRules(mangle);
    let fwSave: () => Promise<string>;
    if (mode === 'kernel') {
      await fw.exec(['iptables-restore'], { input: rules });
      fwSave = async () => (await fw.exec(['iptables-save', '-c'])).stdout;
    } else {
      const d = await Daemon.start(fw, `${scratch.dir}/control.sock`, { rules: scratch.write('rules.v4', rules), queue: QUEUE });
      daemon = d;
      fwSave = async () => (await fw.exec([process.execPath, cliPath(), 'save', '-c', '--control', d.control])).stdout;
    }

    const t = await tcpTransfer(client, server, { addr: SERVICE, port: SERVICE_PORT, listenPort: SERVER_PORT, bytes: BYTES });
    // A packet left in the kernel queue is reported by accounting() below, with the rest of the status.
    if (daemon !== undefined) await daemon.settled(10_000).catch(() => undefined);
    const fwSaved = await fwSave();
    const fwc = countsByComment(fwSaved);
    const srv = countsByComment((await server.exec(['iptables-save', '-c'])).stdout);
    const c = {
      fwAll: count(fwc, 'fw-all', `fw (${mode})`),
      fwBig: count(fwc, 'fw-big', `fw (${mode})`),
      srvAll: count(srv, 'srv-all', 'the server'),
      srvBig: count(srv, 'srv-big', 'the server'),
      srvRewritten: count(srv, 'srv-rewritten', 'the server'),
      srvBigRewritten: count(srv, 'srv-big-rewritten', 'the server'),
      srvSynMss: count(srv, 'srv-syn-mss1200', 'the server'),
    };
    const [sentWord, sentBytes, sentSha] = t.sent.split(' ');
    const [gotWord, gotBytes, gotSha] = t.got.split(' ');
    const fates: Fates = {
      delivered: sentWord === 'sent' && gotWord === 'got' && sentBytes === String(BYTES) && gotBytes === sentBytes && gotSha === sentSha,
      fwSawBig: c.fwBig > 0,
      serverGotWhatFwCounted: c.fwAll > 0 && c.srvAll === c.fwAll && c.srvBig === c.fwBig,
      serverGotBig: c.srvBig > 0,
      everyPacketRewritten: c.srvAll > 0 && c.srvRewritten === c.srvAll,
      everyBigPacketRewritten: c.srvBig > 0 && c.srvBigRewritten === c.srvBig,
      synClamped: c.srvSynMss === 1,
    };
    const accounted = daemon !== undefined ? await accounting(daemon) : [];
    let detail = `${mode}${mangle ? ' +mangle' : ''}: client ${t.sent}; server ${t.got}; counts ${JSON.stringify(c)}`;
    if (daemon !== undefined) {
      const q = (await daemon.status()).queues.map((x) => ({ received: x.received, accepted: x.accepted, bytes: x['bytes'], cached: x['cached'], ids: x.kernelIdSequence }));
      detail += `; queues ${JSON.stringify(q)}`;
      assert.equal(daemon.running, true, `nfqwall is still running:\n${daemon.output.slice(-2000)}`);
    }
    if (VERBOSE) process.stderr.write(`${detail}\n`);
    return { fates, detail, accounting: accounted };
  } finally {
    if (daemon?.running === true) await daemon.stop('SIGTERM');
    scratch.cleanup();
    await lab.destroy();
  }
}

describe('robust: GSO packets larger than the MTU through the queue (lab)', function () {
  this.timeout(240_000);
  before(function () {
    skipUnlessRoot(this, 'robust gso');
  });

  it('a 4 MiB TCP transfer through DNAT and MASQUERADE arrives intact; FORWARD judged packets longer than the MTU; every queued id got one verdict, as the kernel', async function () {
    const kernel = await run('kernel', false, this);
    const nfqwall = await run('nfqwall', false, this);
    const want: Fates = {
      delivered: true,
      fwSawBig: true,
      serverGotWhatFwCounted: true,
      serverGotBig: true,
      everyPacketRewritten: false,
      everyBigPacketRewritten: false,
      synClamped: false,
    };
    assert.deepEqual(kernel.fates, want, `the kernel does what this test expects: ${kernel.detail}`);
    // Together, so a failure shows both what differed and what nfqwall's accounting says about it.
    assert.deepEqual(
      { fates: nfqwall.fates, accounting: nfqwall.accounting },
      { fates: kernel.fates, accounting: [] },
      `nfqwall does what the kernel does, and every queued id got one verdict: ${nfqwall.detail}\n(kernel: ${kernel.detail})`,
    );
  });

  it('the same with TTL, DSCP and TCPMSS rewrites of every packet in mangle FORWARD: intact, every large packet rewritten, as the kernel', async function () {
    const kernel = await run('kernel', true, this);
    const nfqwall = await run('nfqwall', true, this);
    const want: Fates = {
      delivered: true,
      fwSawBig: true,
      serverGotWhatFwCounted: true,
      serverGotBig: true,
      everyPacketRewritten: true,
      everyBigPacketRewritten: true,
      synClamped: true,
    };
    assert.deepEqual(kernel.fates, want, `the kernel does what this test expects: ${kernel.detail}`);
    // Together, so a failure shows both what differed and what nfqwall's accounting says about it.
    assert.deepEqual(
      { fates: nfqwall.fates, accounting: nfqwall.accounting },
      { fates: kernel.fates, accounting: [] },
      `nfqwall does what the kernel does, and every queued id got one verdict: ${nfqwall.detail}\n(kernel: ${kernel.detail})`,
    );
  });
});
