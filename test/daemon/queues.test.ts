// Several queues: the hook rules spread packets with --queue-balance (by address hash, or by CPU with
// --queue-cpu-fanout), every queue has its own receive thread, and all share one connection table, so a NATed
// connection whose two directions meet different queues still works.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { controlRequest } from '../../src/daemon/control';
import { installScript, queueTarget, type HookPlan } from '../../src/daemon/hooks';
import { lossCounters } from '../../src/daemon/loss-report';
import { queueHealth } from '../../src/daemon/systemd';
import type { QueueStats } from '../../src/native';
import { HOOKS } from '../../src/rules/model';
import { kernelQueueLines, scratchDir, sleep } from '../lab/daemon';
import { THREE_HOST as A, threeHostSpec, useLab, type Host } from '../lab/lab';

const plan: HookPlan = { family: 4, hooks: HOOKS, queue: 20, queues: 2, failOpen: false, notrack: true };

describe('several queues: hook rules', () => {
  it('balances over the consecutive queues, in the words iptables-save prints', () => {
    const s = installScript(plan);
    for (const h of HOOKS) assert.match(s, new RegExp(`^-A NFQWALL-${h} -j NFQUEUE --queue-balance 20:21$`, 'm'));
    assert.doesNotMatch(s, /--queue-num/);
    assert.equal(queueTarget({ ...plan, queues: 4, failOpen: true, cpuFanout: true }), '--queue-balance 20:23 --queue-bypass --queue-cpu-fanout');
  });

  it('keeps --queue-num for one queue, where --queue-cpu-fanout means nothing', () => {
    assert.equal(queueTarget({ ...plan, queues: 1, cpuFanout: true }), '--queue-num 20');
    assert.equal(queueTarget({ queue: 3, failOpen: false }), '--queue-num 3');
  });

  it('refuses a range that goes past 65535 or holds no queue', () => {
    assert.throws(() => installScript({ ...plan, queue: 65535, queues: 2 }), /2 queues from 65535/);
    assert.throws(() => installScript({ ...plan, queues: 0 }), /0 queues/);
    assert.doesNotThrow(() => installScript({ ...plan, queue: 65534, queues: 2 }));
  });
});

function stats(queue: number, over: Partial<QueueStats>): QueueStats {
  const zero = { received: 0, accepted: 0, dropped: 0, bytes: 0, batches: 0, errors: 0, enobufs: 0, overload: 0, defaulted: 0 };
  const kernel = { maxLen: 4096, kernelQueueTotal: 0, kernelQueueDropped: 0, kernelUserDropped: 0, kernelIdSequence: 0, pendingBatches: 0, threadIdleMs: 0 };
  return { queue, ...zero, ...kernel, ...over };
}

describe('several queues: the per-queue reports', () => {
  it('the watchdog names the one queue whose receive thread stalled or closed', () => {
    assert.equal(queueHealth([stats(20, { threadIdleMs: 10 }), stats(21, { threadIdleMs: 20 })], 1000), undefined);
    assert.match(queueHealth([stats(20, { threadIdleMs: 10 }), stats(21, { threadIdleMs: 5000 })], 1000) ?? '', /^queue 21 receive thread idle/);
    assert.match(queueHealth([stats(20, {}), stats(21, { closed: true })], 1000) ?? '', /^queue 21 is closed/);
  });

  it('the loss report adds up every queue', () => {
    const sum = lossCounters([stats(20, { overload: 3, kernelQueueDropped: 1, ctDropped: 2 }), stats(21, { overload: 4, enobufs: 5 })]);
    assert.deepEqual(sum, { overload: 7, kernelQueueDropped: 1, kernelUserDropped: 0, enobufs: 5, ctDropped: 2 });
  });
});

const QUEUE = 20;
const METRICS = '127.0.0.1:9479';
const DPORT = 7000;
const SPORT = 7001;
/** Addresses of fw on the client link the client sends to; each is another address pair for the kernel's hash. */
const VIPS = Array.from({ length: 16 }, (_, i) => `198.18.0.${100 + i}`);
const NODE = process.execPath;

/** The CLI entry beside this test: src/cli/main.ts under tsx, dist/src/cli/main.js when compiled. */
function cliArgv(): string[] {
  const ts = __filename.endsWith('.ts');
  const main = path.join(__dirname, '..', '..', 'src', 'cli', ts ? 'main.ts' : 'main.js');
  return ts ? [process.execPath, '--import', 'tsx', main] : [process.execPath, main];
}

// DNAT every VIP to the server, MASQUERADE towards it; FORWARD lets through only NEW connections to the server and
// what the connection table knows: a reply judged on a queue whose table had not seen the request would be dropped.
function rules(toServer: string): string {
  return `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport ${DPORT} -j DNAT --to-destination ${A.server4}:${SPORT}
-A POSTROUTING -o ${toServer} -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -d ${A.server4}/32 -p udp -m udp --dport ${SPORT} -m conntrack --ctstate NEW -j ACCEPT
COMMIT
`;
}

// argv: addr port. Echoes each datagram with the address it came from.
const ECHO = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => s.send(r.address + ' ' + m, r.port, r.address));
s.bind(Number(process.argv[2]), process.argv[1], () => process.stdout.write('ready\\n'));
`;

// argv: addr port count. One datagram in flight at a time; prints each reply as "<from> <text>", then `done`.
const CLIENT = `
const s = require('node:dgram').createSocket('udp4');
const [addr, port, count] = process.argv.slice(1);
let i = 0;
const next = () => {
  if (i === Number(count)) { process.stdout.write('done\\n'); process.exit(0); }
  s.send('n' + i++, Number(port), addr);
};
s.on('message', (m, r) => { process.stdout.write(r.address + ':' + r.port + ' ' + m + '\\n'); next(); });
setTimeout(() => { process.stdout.write('timeout\\n'); process.exit(0); }, 3000);
s.bind(0, next);
`;

interface QueueJson {
  queue: number;
  received: number;
  accepted: number;
  dropped: number;
  overload: number;
  defaulted: number;
  kernelIdSequence: number;
  kernelQueueTotal: number;
}

function waitReady(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`echo server not ready: ${out}`)), 10_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (/^ready$/m.test(out)) {
        clearTimeout(t);
        resolve();
      }
    });
  });
}

async function kernelQueues(fw: Host): Promise<number[]> {
  const r = await fw.exec(['cat', '/proc/net/netfilter/nfnetlink_queue'], { check: false });
  return kernelQueueLines(r.stdout).map((q) => q.queue);
}

/**
 * Two queues in the lab, spread by address hash or (`fanout`) by the CPU that handles each packet. The tests that
 * depend on how packets are spread say so; the rest hold for both.
 */
function twoQueuesLab(fanout: boolean): void {
  const how = fanout ? 'by CPU (--queue-cpu-fanout)' : 'by address hash';
  describe(`several queues ${how}: a DNAT+MASQUERADE connection split over two queues (lab)`, function () {
    this.timeout(180_000);
    const env = useLab(threeHostSpec);
    let scratch: ReturnType<typeof scratchDir> | undefined;
    let daemon: ChildProcess | undefined;
    let output = '';
    let control = '';

    const queues = async (): Promise<QueueJson[]> => {
      const res = (await controlRequest(control, { cmd: 'status' })) as { queues?: QueueJson[] };
      return res.queues ?? [];
    };
    /** Every queued packet answered and nothing waiting in the kernel, twice in a row. */
    const settled = async (): Promise<QueueJson[]> => {
      let quiet = 0;
      for (let i = 0; i < 500; i++) {
        const qs = await queues();
        quiet = qs.every((q) => q.received === q.accepted + q.dropped && q.kernelQueueTotal === 0) ? quiet + 1 : 0;
        if (quiet >= 2) return qs;
        await sleep(5);
      }
      throw new Error(`queues did not settle: ${JSON.stringify(await queues())}`);
    };

    before(async function () {
      const { lab } = env;
      const fw = lab.host('fw');
      scratch = scratchDir();
      const file = scratch.write('rules.v4', rules(fw.ifname('server')));
      control = path.join(scratch.dir, 'control.sock');
      for (const vip of VIPS) await fw.exec(['ip', 'addr', 'add', `${vip}/24`, 'dev', fw.ifname('client')]);
      // Hook skipping off: the split is read from each queue's trips, six per exchange, which skipping would thin out.
      // Late queues off: every hook's trips are spread over the same two queues (test/daemon/late-queue.lab.test.ts
      // has them on).
      const argv = [...cliArgv(), 'run', '--rules', file, '--queue', String(QUEUE), '--queues', '2', '--control', control, '--metrics', METRICS, '--skip-mark', 'off', '--late-queue', 'off'];
      if (fanout) argv.push('--queue-cpu-fanout');
      daemon = fw.spawn(argv);
      daemon.stdout?.on('data', (d: Buffer) => (output += d.toString()));
      daemon.stderr?.on('data', (d: Buffer) => (output += d.toString()));
      for (let i = 0; ; i++) {
        if (daemon.exitCode !== null) throw new Error(`nfqwall run exited (${daemon.exitCode}):\n${output}`);
        try {
          await controlRequest(control, { cmd: 'status' });
          break;
        } catch (err) {
          if (i > 150) throw new Error(`nfqwall did not answer: ${String(err)}\n${output}`);
          await sleep(200);
        }
      }
    });

    after(async () => {
      if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
      scratch?.cleanup();
    });

    it('binds both queues and balances the hooks over them', async () => {
      const qs = await queues();
      assert.deepEqual(qs.map((q) => q.queue), [QUEUE, QUEUE + 1]);
      assert.deepEqual((await kernelQueues(env.lab.host('fw'))).sort(), [QUEUE, QUEUE + 1]);
      const saved = (await env.lab.host('fw').exec(['iptables-save', '-t', 'mangle'])).stdout;
      assert.match(saved, new RegExp(`-A NFQWALL-FORWARD .*-j NFQUEUE --queue-balance ${QUEUE}:${QUEUE + 1}${fanout ? ' --queue-cpu-fanout' : ''}$`, 'm'));
      // One receive thread per queue, named for it, as top -H and perf show them (`ip netns exec` became nfqwall).
      const names = fs.readdirSync(`/proc/${daemon!.pid}/task`).map((t) => fs.readFileSync(`/proc/${daemon!.pid}/task/${t}/comm`, 'utf8').trim());
      assert.deepEqual(names.filter((n) => n.startsWith('nfqw-')).sort(), [`nfqw-q${QUEUE}`, `nfqw-q${QUEUE + 1}`]);
    });

    if (fanout) {
      it('queues a request sent on CPU 0 and its reply sent on CPU 1 on different queues, and carries the connection', async function () {
        // A datagram a process sends over a veth is received on that process's CPU: the PREROUTING trips of the
        // requests go to the first queue, the replies' to the second. The later hooks' trips go where nfqwall's own
        // verdict happens to run, so only their sum is known.
        if (os.cpus().length < 2) {
          process.stdout.write('      (skipped: this machine has one CPU, so every packet goes to one queue)\n');
          this.skip();
        }
        const { lab } = env;
        const client = lab.host('client');
        const echo = lab.host('server').spawn(['taskset', '-c', '1', NODE, '-e', ECHO, A.server4, String(SPORT)]);
        const K = 3;
        try {
          await waitReady(echo);
          // Every VIP: with address hashing, some put all six trips of each exchange on one queue.
          for (const vip of VIPS) {
            const before = await settled();
            const r = await client.exec(['taskset', '-c', '0', NODE, '-e', CLIENT, vip, String(DPORT), String(K)], { timeoutMs: 10_000 });
            const after = await settled();
            const replies = r.stdout.split('\n').filter((l) => l.startsWith(`${vip}:${DPORT} `));
            assert.equal(replies.length, K, `${vip}: ${r.stdout}`);
            for (const [i, line] of replies.entries()) assert.equal(line, `${vip}:${DPORT} ${A.fwServer4} n${i}`);
            const delta = after.map((q, i) => q.received - before[i]!.received);
            assert.equal(delta[0]! + delta[1]!, 6 * K, `${vip}: six trips per exchange: ${delta.join('/')}`);
            assert.ok(delta[0]! >= K && delta[1]! >= K, `${vip}: requests on queue ${QUEUE}, replies on ${QUEUE + 1}: ${delta.join('/')}`);
          }
        } finally {
          echo.kill('SIGKILL');
        }
      });
    } else {
      it('carries a connection whose request and reply are queued on different queues, and spreads flows over both', async () => {
        const { lab } = env;
        const client = lab.host('client');
        const echo = lab.host('server').spawn([NODE, '-e', ECHO, A.server4, String(SPORT)]);
        const K = 3;
        const tried: string[] = [];
        let split: string | undefined;
        try {
          await waitReady(echo);
          for (const vip of VIPS) {
            const before = await settled();
            const r = await client.exec([NODE, '-e', CLIENT, vip, String(DPORT), String(K)], { timeoutMs: 10_000 });
            const after = await settled();
            const replies = r.stdout.split('\n').filter((l) => l.startsWith(`${vip}:${DPORT} `));
            // The reply comes back from the address the client asked (de-DNAT) and the server saw fw's (MASQUERADE).
            assert.equal(replies.length, K, `${vip}: ${r.stdout}`);
            for (const [i, line] of replies.entries()) assert.equal(line, `${vip}:${DPORT} ${A.fwServer4} n${i}`);
            // Per connection: the request at PREROUTING hashes on {client, vip}, the reply at PREROUTING on {server,
            // fw}, and the four FORWARD/POSTROUTING trips on {client, server}. So the two queues' shares are {5K, K} exactly
            // when the request and the reply entered on different queues.
            const delta = after.map((q, i) => q.received - before[i]!.received).sort((a, b) => a - b);
            tried.push(`${vip}: ${delta.join('/')}`);
            assert.equal(delta[0]! + delta[1]!, 6 * K, `six trips per exchange: ${tried.join(', ')}`);
            if (delta[0] === K) {
              split = vip;
              break;
            }
          }
          assert.ok(split !== undefined, `no VIP of ${VIPS.length} split its connection over both queues: ${tried.join(', ')}`);
          const qs = await settled();
          for (const q of qs) assert.ok(q.received > 0, `queue ${q.queue} received nothing: ${JSON.stringify(qs)}`);
        } finally {
          echo.kill('SIGKILL');
        }
      });
    }

    it('gives every id of each queue one verdict, none by default or overload, and reports each in metrics', async () => {
      const qs = await settled();
      const get = `require('node:http').get('http://${METRICS}/metrics', (r) => r.pipe(process.stdout))`;
      const text = (await env.lab.host('fw').exec([NODE, '-e', get])).stdout;
      for (const q of qs) {
        const m = new RegExp(`^nfqwall_queue_received_total\\{queue="${q.queue}"\\} (\\d+)$`, 'm').exec(text);
        assert.ok(m !== null && Number(m[1]) >= q.received && q.received > 0, `queue ${q.queue} in /metrics:\n${text.slice(0, 2000)}`);
      }
      for (const q of qs) {
        assert.equal(q.received, q.kernelIdSequence, `queue ${q.queue}: every id the kernel assigned reached nfqwall`);
        assert.equal(q.accepted + q.dropped, q.received, `queue ${q.queue}`);
        assert.equal(q.overload, 0);
        assert.equal(q.defaulted, 0);
      }
    });

    it('unbinds both queues and removes its hooks when it stops', async () => {
      const fw = env.lab.host('fw');
      const d = daemon!;
      const exited = new Promise<number | null>((r) => d.once('exit', (code) => r(code)));
      d.kill('SIGTERM');
      assert.equal(await exited, 0, output);
      assert.deepEqual(await kernelQueues(fw), []);
      assert.doesNotMatch((await fw.exec(['iptables-save'])).stdout, /NFQWALL|NFQUEUE/);
    });
  });
}

twoQueuesLab(false);
twoQueuesLab(true);
