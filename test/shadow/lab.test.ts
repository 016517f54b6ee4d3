// End to end, in network namespaces: `nfqwall shadow` watching fw's client-side interface must count what the kernel
// counts when it enforces the same ruleset on the same traffic, and --against must list exactly the flows whose fate
// the kernel shows to differ between the two rulesets. A tcpdump file of the same capture, read with --read, must give
// the same counters as the live capture.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { Lab, THREE_HOST, isRoot, threeHostSpec, type Host } from '../lab/lab';
import { cliPath, scratchDir, sleep } from '../lab/daemon';
import type { ShadowReport } from '../../src/shadow/report';

/** Datagrams per destination port, client → server. */
const SENDS: Record<number, number> = { 5001: 5, 5002: 4, 5003: 3, 5004: 2 };

// argv: addr ports... Counts datagrams per port; prints the counts as JSON when stdin ends.
const SINK = `
const dgram = require('node:dgram');
const [addr, ...ports] = process.argv.slice(1);
const counts = {};
let bound = 0;
for (const p of ports) {
  counts[p] = 0;
  const s = dgram.createSocket('udp4');
  s.on('message', () => counts[p]++);
  s.bind(Number(p), addr, () => { if (++bound === ports.length) process.stdout.write('ready\\n'); });
}
process.stdin.on('end', () => { process.stdout.write(JSON.stringify(counts) + '\\n'); process.exit(0); });
process.stdin.resume();
`;

// argv: addr json({port: count}). Sends the datagrams a few milliseconds apart, then exits.
const SENDER = `
const dgram = require('node:dgram');
const [addr, plan] = process.argv.slice(1);
const todo = [];
for (const [p, n] of Object.entries(JSON.parse(plan))) for (let i = 0; i < n; i++) todo.push(Number(p));
const s = dgram.createSocket('udp4');
s.bind(0, () => {
  const next = () => {
    const p = todo.shift();
    if (p === undefined) return setTimeout(() => process.exit(0), 200);
    s.send('nfqw-shadow', p, addr, () => setTimeout(next, 5));
  };
  next();
});
`;

function output(child: ChildProcess): { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  return { out: () => out, err: () => err };
}

async function until(what: string, ms: number, ok: () => boolean, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) throw new Error(`${what}: the process exited first`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

function exited(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`process did not exit within ${ms} ms`)), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

interface Sink {
  stop(): Promise<Record<string, number>>;
}

async function startSink(server: Host): Promise<Sink> {
  const child = server.spawn([process.execPath, '-e', SINK, THREE_HOST.server4, ...Object.keys(SENDS)]);
  const io = output(child);
  await until('udp sink ready', 10_000, () => io.out().includes('ready'), child);
  return {
    async stop() {
      child.stdin?.end();
      await exited(child, 10_000);
      const line = io.out().split('\n').find((l) => l.startsWith('{'));
      if (line === undefined) throw new Error(`sink printed no counts: ${io.err()}`);
      return JSON.parse(line) as Record<string, number>;
    },
  };
}

async function send(client: Host): Promise<void> {
  await client.exec([process.execPath, '-e', SENDER, THREE_HOST.server4, JSON.stringify(SENDS)], { timeoutMs: 20_000 });
}

/** ARP both hops before anything is measured, so no datagram waits on neighbour resolution. */
async function warm(client: Host): Promise<void> {
  await client.exec(['ping', '-n', '-q', '-c', '1', '-W', '2', THREE_HOST.server4], { timeoutMs: 10_000 });
}

/** The rule and chain lines of a save text, counters included, comments dropped. */
function saveLines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

function rulesText(clientIf: string): { candidate: string; against: string } {
  const head = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n';
  return {
    candidate:
      head +
      `-A FORWARD -i ${clientIf} -p udp -m udp --dport 5002 -j DROP\n` +
      '-A FORWARD -p udp -m udp --dport 5003 -j DROP\n' +
      `-A FORWARD -s ${THREE_HOST.client4}/32 -p udp -m udp --dport 5001\n` +
      '-A FORWARD -p udp -m udp --dport 9999 -j ACCEPT\n' +
      'COMMIT\n',
    against:
      head +
      '-A FORWARD -p udp -m udp --dport 5001 -j DROP\n' +
      '-A FORWARD -p udp -m udp --dport 5003 -j DROP\n' +
      '-A FORWARD -p udp -m udp --dport 5004 -j REJECT --reject-with icmp-port-unreachable\n' +
      'COMMIT\n',
  };
}

describe('shadow: live capture in a lab, against the kernel', function () {
  this.timeout(120_000);
  const labs: Lab[] = [];
  let scratch: ReturnType<typeof scratchDir> | undefined;

  before(function () {
    if (!isRoot()) {
      process.stderr.write('shadow lab: skipping: network namespaces need root\n');
      this.skip();
    }
    scratch = scratchDir();
  });

  after(async function () {
    for (const lab of labs) await lab.destroy();
    scratch?.cleanup();
  });

  it('counts what kernel enforcement counts; --against lists the flows the kernel treats differently; --read agrees', async function () {
    if (!scratch) throw new Error('no scratch directory');
    const hasTcpdump = fs.existsSync('/usr/bin/tcpdump') || fs.existsSync('/usr/sbin/tcpdump');

    // Lab A: shadow only. Nothing is enforced, so every datagram reaches the server.
    const a = await Lab.create(threeHostSpec());
    labs.push(a);
    const clientIf = a.host('fw').ifname('client');
    const { candidate, against } = rulesText(clientIf);
    const candFile = scratch.write('candidate.rules', candidate);
    const againstFile = scratch.write('against.rules', against);
    await warm(a.host('client'));
    const sinkA = await startSink(a.host('server'));
    let dump: { child: ChildProcess; io: ReturnType<typeof output>; file: string } | undefined;
    if (hasTcpdump) {
      const file = `${scratch.dir}/fw.pcap`;
      const child = a.host('fw').spawn(['tcpdump', '-i', clientIf, '-n', '-U', '-Z', 'root', '-w', file]);
      const io = output(child);
      await until('tcpdump listening', 10_000, () => io.err().includes('listening on'), child);
      dump = { child, io, file };
    }
    const shadow = a
      .host('fw')
      .spawn([process.execPath, cliPath(), 'shadow', '--rules', candFile, '--against', againstFile, '--iface', clientIf, '--duration', '3', '--json']);
    const sio = output(shadow);
    await until('shadow capturing', 20_000, () => sio.err().includes('capturing on'), shadow);
    await send(a.host('client'));
    await exited(shadow, 30_000);
    assert.equal(shadow.exitCode, 0, sio.err());
    const live = JSON.parse(sio.out()) as ShadowReport;
    const arrivedA = await sinkA.stop();
    assert.deepEqual(arrivedA, { 5001: 5, 5002: 4, 5003: 3, 5004: 2 }, 'shadow mode must not stop anything');
    assert.equal(live.packets.evaluated, 14, JSON.stringify(live.packets));
    assert.ok(live.capture.dropsNote !== undefined && live.capture.dropsNote.length > 0, 'capture drops are reported');

    // Lab B: the kernel enforces the candidate, then the against ruleset, on the same traffic.
    const b = await Lab.create(threeHostSpec());
    labs.push(b);
    const fw = b.host('fw');
    await warm(b.host('client'));
    await fw.exec(['iptables-restore'], { input: candidate });
    let sink = await startSink(b.host('server'));
    await send(b.host('client'));
    const arrivedCand = await sink.stop();
    const kernelSave = (await fw.exec(['iptables-save', '-c', '-t', 'filter'])).stdout;
    await fw.exec(['iptables-restore'], { input: against });
    sink = await startSink(b.host('server'));
    await send(b.host('client'));
    const arrivedAgainst = await sink.stop();

    // Counters: the shadow's save -c must be the kernel's, line for line.
    assert.deepEqual(saveLines(live.counters.v4 ?? ''), saveLines(kernelSave));
    assert.match(kernelSave, /\[4:\d+\] -A FORWARD -i \S+ -p udp -m udp --dport 5002 -j DROP/, 'the kernel did count');
    assert.deepEqual(live.neverHit.map((r) => r.text), ['-A FORWARD -p udp -m udp --dport 9999 -j ACCEPT']);

    // Flows whose fate differs: where the server's arrivals differ between the two kernel runs.
    const differs = Object.keys(SENDS)
      .map(Number)
      .filter((p) => arrivedCand[p] !== arrivedAgainst[p])
      .sort((x, y) => x - y);
    assert.ok(differs.length > 0 && differs.length < Object.keys(SENDS).length, `kernel runs: ${JSON.stringify([arrivedCand, arrivedAgainst])}`);
    const diff = live.differing;
    assert.ok(diff);
    assert.deepEqual(diff.flows.map((f) => f.dport ?? -1).sort((x, y) => x - y), differs);
    for (const f of diff.flows) {
      const port = f.dport ?? -1;
      assert.equal(f.packets, SENDS[port]);
      assert.equal(f.verdict === 'accept', arrivedCand[port] === SENDS[port], `candidate fate of ${port}`);
      assert.equal(f.against?.verdict === 'accept', arrivedAgainst[port] === SENDS[port], `against fate of ${port}`);
      assert.ok(f.rule !== null && f.against?.rule !== null, 'both rules responsible are named');
    }

    // The tcpdump file of lab A's capture, read back, counts the same.
    if (dump) {
      dump.child.kill('SIGINT');
      await exited(dump.child, 10_000);
      const r = await a
        .host('fw')
        .exec([process.execPath, cliPath(), 'shadow', '--rules', candFile, '--read', dump.file, '--iface', clientIf, '--json'], { timeoutMs: 30_000 });
      const fromFile = JSON.parse(r.stdout) as ShadowReport;
      assert.deepEqual(saveLines(fromFile.counters.v4 ?? ''), saveLines(live.counters.v4 ?? ''));
      assert.equal(fromFile.packets.evaluated, live.packets.evaluated);
    } else {
      process.stderr.write('shadow lab: tcpdump is not installed: the --read check on a real capture file did not run\n');
    }
  });
});
