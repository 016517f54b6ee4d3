// Faults of the network around nfqwall (root; issues #9 and #5), each run the same way against the kernel's own rules
// in a fresh lab, so what nfqwall does is compared with what the kernel does:
//  - MASQUERADE bindings are forgotten when their interface goes down or away, or their address is removed
//    (nf_nat_masquerade.c: masq_device_event on NETDEV_DOWN, masq_inet_event on an address removed), and the flow's
//    next packet is masqueraded afresh with the interface's address of then;
//  - `-m addrtype --dst-type LOCAL` and REDIRECT follow addresses added and removed while nfqwall runs;
//  - the disk full for nfqwall's log: filtering goes on, lost lines are counted, logging resumes (nfqwall only: the
//    kernel's LOG goes to its ring buffer, which never fills).
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { cliPath, Daemon, scratchDir, sleep, type QueueStatsJson } from '../lab/daemon';
import { Lab, skipUnlessRoot, THREE_HOST as A, threeHostSpec, type Host } from '../lab/lab';
import { udpExchange } from '../lab/traffic';

const QUEUE = 13;
const VERBOSE = process.env['NFQW_VERBOSE'] === '1';
type Mode = 'kernel' | 'nfqwall';

// argv: port. Echoes each datagram and remembers its source address; prints `sources a,b,...` per stdin line.
const SOURCES = `
const s = require('node:dgram').createSocket('udp4');
const seen = [];
s.on('message', (m, r) => { seen.push(r.address); s.send(m, r.port, r.address); });
s.bind(Number(process.argv[1]), () => process.stdout.write('ready\\n'));
process.stdin.on('data', () => process.stdout.write('sources ' + seen.join(',') + '\\n'));
process.stdin.on('end', () => process.exit(0));
`;

// argv: addr port sport waitMs. One datagram from sport (0: any), prints the reply's text or `none`.
const PROBE = `
const s = require('node:dgram').createSocket('udp4');
const [addr, port, sport, waitMs] = process.argv.slice(1);
const t = setTimeout(() => { process.stdout.write('none\\n'); process.exit(0); }, Number(waitMs));
s.on('message', (m, r) => { if (r.address !== addr) return; clearTimeout(t); process.stdout.write('reply ' + m + '\\n'); process.exit(0); });
s.bind(Number(sport), () => s.send('probe', Number(port), addr));
`;

// argv: addr:port ... Each socket answers with the address and port it is bound to (ip_nonlocal_bind lets it bind an
// address the host does not have yet).
const WHO = `
const dgram = require('node:dgram');
let ready = 0;
const all = process.argv.slice(1);
for (const ap of all) {
  const i = ap.lastIndexOf(':');
  const s = dgram.createSocket('udp4');
  s.on('message', (m, r) => s.send(ap, r.port, r.address));
  s.bind(Number(ap.slice(i + 1)), ap.slice(0, i), () => { if (++ready === all.length) process.stdout.write('ready\\n'); });
}
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

function waitReady(child: ChildProcess, ms = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`not ready within ${ms} ms: ${out}`)), ms);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (/^ready$/m.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`exited (${code}) before ready: ${out}`)));
  });
}

async function probe(client: Host, addr: string, port: number, sport: number, waitMs = 800): Promise<string> {
  const r = await client.exec([process.execPath, '-e', PROBE, addr, String(port), String(sport), String(waitMs)], { timeoutMs: waitMs + 10_000 });
  const line = r.stdout.trim();
  return line.startsWith('reply ') ? line.slice(6) : 'none';
}

/**
 * Probes until the answer is `want` or `ms` pass; the last answer and how long it took. `sport` gives each probe's
 * source port: a fixed one continues a connection, a new one each time asks the rules afresh.
 */
async function probeUntil(client: Host, addr: string, port: number, sport: () => number, want: string, ms = 5_000): Promise<{ got: string; ms: number; probes: number }> {
  const t0 = Date.now();
  let got = '';
  let probes = 0;
  do {
    probes++;
    got = await probe(client, addr, port, sport());
    if (got === want) break;
    await sleep(100);
  } while (Date.now() - t0 < ms);
  return { got, ms: Date.now() - t0, probes };
}

/** Runs `fn` against a fresh three-host lab, with nfqwall (rules as given) or the kernel (the same rules restored). */
async function inLab<T>(mode: Mode, rules: string, fn: (lab: Lab, list: () => Promise<string>) => Promise<T>, prepare?: (lab: Lab) => Promise<void>): Promise<T> {
  const lab = await Lab.create(threeHostSpec());
  const scratch = scratchDir();
  let daemon: Daemon | undefined;
  try {
    await prepare?.(lab);
    const fw = lab.host('fw');
    let list: () => Promise<string>;
    if (mode === 'kernel') {
      await fw.exec(['iptables-restore'], { input: rules });
      list = async () => (await fw.exec(['conntrack', '-L', '-p', 'udp'], { check: false })).stdout;
    } else {
      const file = scratch.write('rules.v4', rules);
      const d = await Daemon.start(fw, `${scratch.dir}/control.sock`, { rules: file, queue: QUEUE });
      daemon = d;
      list = async () => (await fw.exec([process.execPath, cliPath(), 'conntrack', '-L', '--control', d.control])).stdout;
    }
    const out = await fn(lab, list);
    if (daemon !== undefined) {
      assert.equal(daemon.running, true, `nfqwall is still running:\n${daemon.output.slice(-2000)}`);
      if (VERBOSE) process.stderr.write(daemon.output.split('\n').filter((l) => /forgot/.test(l)).join('\n') + '\n');
    }
    return out;
  } finally {
    if (daemon?.running === true) await daemon.stop('SIGTERM');
    scratch.cleanup();
    await lab.destroy();
  }
}

/** Polls the connection table until no entry has `needle` (true), or `ms` pass (false). */
async function gone(list: () => Promise<string>, needle: string, ms = 3_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  do {
    if (!(await list()).includes(needle)) return true;
    await sleep(50);
  } while (Date.now() < deadline);
  return false;
}

const MASQ_RULES = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o to-server -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
`;

const SPORT = 40001;
const FLOW = `sport=${SPORT} `;

interface MasqStep {
  step: string;
  /** The flow's entry left the table after the event (undefined: no event in this step). */
  forgotten?: boolean;
  /** The server's answer came back to the client. */
  reply: boolean;
  /** The source address the server saw for the flow's packet. */
  source: string | undefined;
  /** The flow has an entry again after the packet. */
  tracked: boolean;
}

async function masqueradeRun(mode: Mode): Promise<MasqStep[]> {
  return inLab(
    mode,
    MASQ_RULES,
    async (lab, list) => {
      const fw = lab.host('fw');
      const client = lab.host('client');
      const server = lab.host('server');
      const sink = server.spawn([process.execPath, '-e', SOURCES, '5000']);
      await waitReady(sink);
      const lastSource = async (): Promise<string | undefined> => {
        const line = new Promise<string>((resolve) => {
          let buf = '';
          const on = (d: Buffer): void => {
            buf += d.toString();
            const m = /^sources (.*)$/m.exec(buf);
            if (m) {
              sink.stdout?.off('data', on);
              resolve(m[1]!);
            }
          };
          sink.stdout?.on('data', on);
        });
        sink.stdin?.write('?\n');
        const all = (await line).split(',').filter((s) => s !== '');
        return all.at(-1);
      };
      const steps: MasqStep[] = [];
      /** The flow's next packet (retried while the path is not back yet: a route, the host view). */
      const send = async (step: string, forgotten?: boolean): Promise<void> => {
        const r = await probeUntil(client, A.server4, 5000, () => SPORT, 'probe', 5_000);
        steps.push({ step, forgotten, reply: r.got === 'probe', source: await lastSource(), tracked: (await list()).includes(FLOW) });
      };
      try {
        await send('established');

        await fw.exec(['ip', 'link', 'set', 'to-server', 'down']);
        const downForgotten = await gone(list, FLOW);
        await fw.exec(['ip', 'link', 'set', 'to-server', 'up']);
        await send('link down, then up', downForgotten);

        // A second address first, promoted when the first goes (promote_secondaries), so the interface always has one.
        await fw.exec(['ip', 'addr', 'add', '198.19.0.3/24', 'dev', 'to-server']);
        await fw.exec(['ip', 'addr', 'del', '198.19.0.1/24', 'dev', 'to-server']);
        await send('address changed', await gone(list, FLOW));

        // Deleting a veth end deletes its peer (the server's) too: both come back, the fw end with 198.19.0.1 again.
        await fw.exec(['ip', 'link', 'del', 'to-server']);
        const delForgotten = await gone(list, FLOW);
        await fw.exec(['ip', 'link', 'add', 'to-server', 'type', 'veth', 'peer', 'name', 'to-fw', 'netns', server.ns]);
        await fw.exec(['ip', 'addr', 'add', '198.19.0.1/24', 'dev', 'to-server']);
        await fw.exec(['ip', 'link', 'set', 'to-server', 'up']);
        await server.exec(['ip', 'addr', 'add', '198.19.0.2/24', 'dev', 'to-fw']);
        await server.exec(['ip', 'link', 'set', 'to-fw', 'up']);
        await send('interface deleted and re-created', delForgotten);
      } finally {
        sink.kill('SIGKILL');
      }
      return steps;
    },
    async (lab) => {
      await lab.host('fw').exec(['sysctl', '-q', '-w', 'net.ipv4.conf.all.promote_secondaries=1']);
    },
  );
}

const REDIRECT_RULES = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 6000 -m addrtype --dst-type LOCAL -j REDIRECT --to-ports 7000
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
`;

/** The NodePort-style address the client sends to: routed to fw, not fw's until the test adds it. */
const NODE_ADDR = '198.18.200.1';

interface RedirectStep {
  step: string;
  /** Who answered: `addr:port` of fw's socket the packet reached, or `none`. */
  answer: string;
  /** Milliseconds and probes until the answer was the expected one (only reported, not compared). */
  ms: number;
  probes: number;
}

async function redirectRun(mode: Mode): Promise<RedirectStep[]> {
  return inLab(
    mode,
    REDIRECT_RULES,
    async (lab) => {
      const fw = lab.host('fw');
      const client = lab.host('client');
      // Every place a packet to NODE_ADDR:6000 could end up: redirected to either primary address of fw's client
      // side, redirected but to its own destination, or not redirected.
      const who = fw.spawn([process.execPath, '-e', WHO, '198.18.0.1:7000', '198.18.0.9:7000', `${NODE_ADDR}:7000`, `${NODE_ADDR}:6000`]);
      await waitReady(who);
      const steps: RedirectStep[] = [];
      let sport = 41000;
      const expect = async (step: string, want: string): Promise<void> => {
        // A new source port for every probe: a connection keeps the binding it was given (in the kernel too), so a
        // probe that nfqwall decided in the moment before it reread the host would otherwise decide all the retries.
        const r = await probeUntil(client, NODE_ADDR, 6000, () => ++sport, want, 5_000);
        steps.push({ step, answer: r.got, ms: r.ms, probes: r.probes });
      };
      try {
        await expect('before the address exists (forwarded, no route)', 'none');
        await fw.exec(['ip', 'addr', 'add', `${NODE_ADDR}/32`, 'dev', 'to-server']);
        await expect('address added: LOCAL, redirected to the primary address of the incoming interface', '198.18.0.1:7000');
        await fw.exec(['ip', 'addr', 'add', '198.18.0.9/24', 'dev', 'to-client']);
        await fw.exec(['ip', 'addr', 'del', '198.18.0.1/24', 'dev', 'to-client']);
        await client.exec(['ip', 'route', 'replace', '198.18.200.0/24', 'via', '198.18.0.9']);
        await expect('primary address of the incoming interface changed', '198.18.0.9:7000');
        await fw.exec(['ip', 'addr', 'del', `${NODE_ADDR}/32`, 'dev', 'to-server']);
        await expect('address removed: no longer LOCAL', 'none');
      } finally {
        who.kill('SIGKILL');
      }
      return steps;
    },
    async (lab) => {
      await lab.host('fw').exec(['sysctl', '-q', '-w', 'net.ipv4.conf.all.promote_secondaries=1', 'net.ipv4.ip_nonlocal_bind=1']);
      await lab.host('client').exec(['ip', 'route', 'add', '198.18.200.0/24', 'via', A.fwClient4]);
    },
  );
}

describe('robust: interfaces and addresses change under nfqwall (lab)', function () {
  this.timeout(240_000);
  before(function () {
    skipUnlessRoot(this, 'robust: network faults');
  });

  it('MASQUERADE: an interface down, an address changed, an interface deleted: the binding is forgotten and the next packet masqueraded afresh, as by the kernel', async () => {
    const kernel = await masqueradeRun('kernel');
    const nfqwall = await masqueradeRun('nfqwall');
    if (VERBOSE) process.stderr.write(`kernel:  ${JSON.stringify(kernel)}\nnfqwall: ${JSON.stringify(nfqwall)}\n`);
    const want: MasqStep[] = [
      { step: 'established', forgotten: undefined, reply: true, source: '198.19.0.1', tracked: true },
      { step: 'link down, then up', forgotten: true, reply: true, source: '198.19.0.1', tracked: true },
      { step: 'address changed', forgotten: true, reply: true, source: '198.19.0.3', tracked: true },
      { step: 'interface deleted and re-created', forgotten: true, reply: true, source: '198.19.0.1', tracked: true },
    ];
    assert.deepEqual(kernel, want, 'the kernel does what this test expects');
    assert.deepEqual(nfqwall, kernel, 'nfqwall does what the kernel does');
  });

  it('addrtype LOCAL and REDIRECT follow an address added, a primary address changed and the address removed, as in the kernel', async () => {
    const kernel = await redirectRun('kernel');
    const nfqwall = await redirectRun('nfqwall');
    if (VERBOSE) process.stderr.write(`kernel:  ${JSON.stringify(kernel)}\nnfqwall: ${JSON.stringify(nfqwall)}\n`);
    const answers = (s: RedirectStep[]): string[] => s.map((x) => `${x.step}: ${x.answer}`);
    assert.deepEqual(answers(kernel), [
      'before the address exists (forwarded, no route): none',
      'address added: LOCAL, redirected to the primary address of the incoming interface: 198.18.0.1:7000',
      'primary address of the incoming interface changed: 198.18.0.9:7000',
      'address removed: no longer LOCAL: none',
    ]);
    assert.deepEqual(answers(nfqwall), answers(kernel), 'nfqwall answers as the kernel does');
  });
});

// ---------------------------------------------------------------------------------------------------------------------

const LOG_RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp -m udp --dport 5000 -j LOG --log-prefix "nfqw-disk "
-A FORWARD -p udp -m udp --dport 5001 -j DROP
COMMIT
`;
const METRICS_PORT = 9473;

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (m === null) throw new Error(`no ${name} in the scrape:\n${text.slice(0, 500)}`);
  return Number(m[1]);
}

describe('robust: the disk full for the log (lab)', function () {
  this.timeout(120_000);
  let lab: Lab | undefined;
  let scratch: ReturnType<typeof scratchDir> | undefined;
  let daemon: Daemon | undefined;

  before(async function () {
    skipUnlessRoot(this, 'robust: disk full');
    this.timeout(60_000);
    lab = await Lab.create(threeHostSpec());
  });
  after(async function () {
    this.timeout(30_000);
    if (daemon?.running === true) await daemon.stop('SIGTERM');
    scratch?.cleanup();
    await lab?.destroy();
  });

  it('filtering goes on without a stall or a crash, lost lines are counted, logging resumes when there is room', async () => {
    const fw = lab!.host('fw');
    const client = lab!.host('client');
    const server = lab!.host('server');
    scratch = scratchDir();
    const rules = scratch.write('rules.v4', LOG_RULES);
    const config = scratch.write(
      'nfqwall.conf',
      [`rules = ${rules}`, `queue = ${QUEUE}`, 'log_rate = 1000', 'log_burst = 1000', `metrics = 127.0.0.1:${METRICS_PORT}`, ''].join('\n'),
    );
    const logDir = `${scratch.dir}/log`;
    fs.mkdirSync(logDir);
    // A 64 KiB tmpfs over logDir in a mount namespace of nfqwall's own (private: nothing propagates to the host), with
    // nfqwall's stdout appended to a file in it, as StandardOutput=append: does under systemd. Every `exec` keeps the
    // pid, so the daemon's pid is the spawned child's and /proc/PID/root shows its mounts.
    daemon = await Daemon.start(fw, `${scratch.dir}/control.sock`, {
      config,
      wrap: (argv) => [
        'unshare', '--mount', '--propagation', 'private', 'sh', '-c',
        'd=$1; shift; mount -t tmpfs -o size=64k nfqwlog "$d" || exit 1; exec "$@" >>"$d/nfqwall.log"',
        'sh', logDir, ...argv,
      ],
    });
    const d = daemon;
    const inNs = `/proc/${d.child.pid}/root${logDir}`;
    assert.notEqual(fs.statSync(inNs).dev, fs.statSync(logDir).dev, 'the log directory is a tmpfs in nfqwall\'s mount namespace only');
    const logText = (): string => fs.readFileSync(`${inNs}/nfqwall.log`, 'utf8');
    const scrape = (): Promise<string> => d.metrics(METRICS_PORT);
    const logged = (): number => (logText().match(/nfqw-disk /g) ?? []).length;

    assert.equal(await udpExchange(client, server, A.server4, 5000, 10, 1_500), 10);
    await sleep(200);
    assert.ok(logged() >= 10, `LOG lines are written while there is room:\n${logText().slice(-1000)}`);
    assert.equal(metric(await scrape(), 'nfqwall_log_lines_dropped_total'), 0);

    // Fill the tmpfs to the last byte: a file for the free pages, then newlines for the room left in the log's last page
    // (blank lines, so the log stays line by line).
    let filled = 0;
    for (const [file, byte] of [[`${inNs}/fill`, 0x2e], [`${inNs}/nfqwall.log`, 0x0a]] as const) {
      const fd = fs.openSync(file, 'a');
      try {
        for (let chunk = 4096; chunk >= 1; ) {
          try {
            filled += fs.writeSync(fd, Buffer.alloc(chunk, byte));
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
            chunk >>= 1;
          }
        }
      } finally {
        fs.closeSync(fd);
      }
    }
    const before = logText();

    // Full: 200 logged datagrams and 20 dropped ones. Every logged one is a lost line; none is lost to filtering.
    const t0 = Date.now();
    assert.equal(await udpExchange(client, server, A.server4, 5000, 200, 3_000), 200, 'the flow passes while the log cannot be written');
    assert.equal(await udpExchange(client, server, A.server4, 5001, 20, 1_000), 0, 'the DROP rule still drops');
    const elapsed = Date.now() - t0;
    await d.settled(5_000);
    const q: QueueStatsJson = await d.queueStats(QUEUE);
    assert.equal(q.accepted + q.dropped, q.received, `every packet got its verdict: ${JSON.stringify(q)}`);
    assert.equal(q.kernelQueueTotal, 0, 'nothing waits in the kernel queue');
    assert.equal(d.running, true, `nfqwall is still running:\n${d.output}`);
    const lost = metric(await scrape(), 'nfqwall_log_lines_dropped_total');
    assert.ok(lost >= 200, `the lost LOG lines are counted: ${lost}`);
    assert.equal(logText(), before, 'nothing was written while the disk was full');
    if (VERBOSE) process.stderr.write(`disk full: ${filled} bytes to fill, ${lost} lines lost, 220 probes in ${elapsed} ms\n`);

    // Room again: the next line says how many were lost, then the LOG lines come back.
    fs.unlinkSync(`${inNs}/fill`);
    assert.equal(await udpExchange(client, server, A.server4, 5000, 10, 1_500), 10);
    await sleep(300);
    const after = logText().slice(before.length);
    const report = /^<4>lost (\d+) log lines lost=\d+ error=ENOSPC total=(\d+)$/m.exec(after);
    assert.ok(report, `a line reports the loss:\n${after.slice(0, 1000)}`);
    assert.equal(Number(report[1]), lost, 'the report counts what the metric counted');
    assert.equal(Number(report[2]), lost);
    assert.ok((after.match(/nfqw-disk /g) ?? []).length >= 10, `LOG lines are written again:\n${after.slice(0, 1000)}`);
    assert.equal(metric(await scrape(), 'nfqwall_log_lines_dropped_total'), lost, 'nothing lost since');
  });
});
