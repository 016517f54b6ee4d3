// Issue #9 (privilege): `nfqwall run` started with every capability (root) or with what systemd/nfqwall.service grants
// (a service user with NET_ADMIN, NET_RAW, SETPCAP) serves with CAP_NET_ADMIN alone, in all five sets of every thread
// and of its children, and still sends REJECT's replies (raw sockets opened before the drop), reloads and removes its
// hooks at stop. src/daemon/privilege.ts; docs/robustness.md, Privilege.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { controlRequest } from '../../src/daemon/control';
import { cliPath, FORWARD_HOOK, kernelRules, sleep } from '../lab/daemon';
import { Lab, skipUnlessRoot, THREE_HOST, threeHostSpec, type Host } from '../lab/lab';
import { udpExchange } from '../lab/traffic';

const NET_ADMIN_ONLY = '0000000000001000';

const RULES4 = (udpAccept: number): string =>
  [
    '*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]',
    '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    `-A FORWARD -p udp -m udp --dport ${udpAccept} -j ACCEPT`,
    '-A FORWARD -p tcp -m tcp --dport 7003 -j REJECT --reject-with tcp-reset',
    '-A FORWARD -p udp -m udp --dport 7004 -j REJECT',
    'COMMIT', '',
  ].join('\n');
const RULES6 = [
  '*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]',
  '-A FORWARD -p tcp -m tcp --dport 7003 -j REJECT --reject-with tcp-reset',
  'COMMIT', '',
].join('\n');

// argv: addr port timeoutMs. Prints how a TCP connect ends: `connected`, or the error code (ECONNREFUSED: a reset).
const TCP_PROBE = `
const net = require('node:net');
const [addr, port, ms] = process.argv.slice(1);
const c = net.connect({ host: addr, port: Number(port) });
const t = setTimeout(() => { process.stdout.write('timeout\\n'); process.exit(0); }, Number(ms));
c.on('connect', () => { process.stdout.write('connected\\n'); process.exit(0); });
c.on('error', (e) => { clearTimeout(t); process.stdout.write(e.code + '\\n'); process.exit(0); });
`;
// argv: addr port timeoutMs. Sends datagrams on a connected socket; an ICMP port unreachable fails the next one with
// ECONNREFUSED.
const UDP_PROBE = `
const dgram = require('node:dgram');
const [addr, port, ms] = process.argv.slice(1);
const s = dgram.createSocket(addr.includes(':') ? 'udp6' : 'udp4');
const t = setTimeout(() => { process.stdout.write('timeout\\n'); process.exit(0); }, Number(ms));
s.on('error', (e) => { clearTimeout(t); process.stdout.write(e.code + '\\n'); process.exit(0); });
s.connect(Number(port), addr, () => { const tick = () => s.send('x', () => setTimeout(tick, 100)); tick(); });
`;

/** Every thread's Cap* lines of `pid`: [thread, set, hex]. */
function threadSets(pid: number): Array<[string, string, string]> {
  const out: Array<[string, string, string]> = [];
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    let st: string;
    try {
      st = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    } catch {
      continue;
    }
    for (const m of st.matchAll(/^Cap(Inh|Prm|Eff|Bnd|Amb):\s+([0-9a-f]+)$/gm)) out.push([tid, m[1]!, m[2]!]);
  }
  return out;
}

/** The processes whose parent is `pid` (the ip monitor, an iptables run), by /proc. */
function children(pid: number): number[] {
  const out: number[] = [];
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const text = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (text !== '') out.push(...text.split(/\s+/).map(Number));
    } catch {
      // The thread ended.
    }
  }
  return out;
}

describe('robust: capabilities, CAP_NET_ADMIN only (lab)', function () {
  this.timeout(120_000);
  let lab: Lab | undefined;
  let dir: string;
  before(async function () {
    skipUnlessRoot(this, 'nfqwall run in a lab namespace');
    lab = await Lab.create(threeHostSpec());
  });
  after(async () => {
    await lab?.destroy();
  });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-caps-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const fw = (): Host => lab!.host('fw');
  const client = (): Host => lab!.host('client');
  const server = (): Host => lab!.host('server');

  async function probe(script: string, addr: string, port: number): Promise<string> {
    const r = await client().exec([process.execPath, '-e', script, addr, String(port), '3000'], { timeoutMs: 15_000 });
    return r.stdout.trim();
  }

  /** `nfqwall run` under `wrap` in fw; resolves once status answers. */
  async function start(wrap: string[], args: string[], control: string): Promise<{ child: ChildProcess; status: Record<string, unknown>; output: () => string; stop: () => Promise<number | null> }> {
    const child = fw().spawn([...wrap, process.execPath, cliPath(), 'run', ...args]);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const running = (): boolean => child.exitCode === null && child.signalCode === null;
    const stop = async (): Promise<number | null> => {
      if (running()) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    };
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (!running()) throw new Error(`nfqwall exited before answering:\n${out}`);
      const r = await controlRequest(control, { cmd: 'status' }, 2_000).catch(() => undefined);
      if (r?.ok === true) return { child, status: r, output: () => out, stop };
      await sleep(200);
    }
    await stop();
    throw new Error(`nfqwall did not answer status within 20 s:\n${out}`);
  }

  /** The checks common to both starts: every set of every thread and child, status, REJECT in both families. */
  async function checkServing(pid: number, status: Record<string, unknown>, output: () => string): Promise<void> {
    const sets = threadSets(pid);
    assert.ok(sets.length >= 5 * 4, `threads: ${sets.length / 5}`);
    for (const [tid, set, hex] of sets) assert.equal(hex, NET_ADMIN_ONLY, `thread ${tid} Cap${set}`);
    // The ip monitor was started after the drop; whatever a child runs as, it gets nothing beyond CAP_NET_ADMIN.
    const kids = children(pid);
    assert.ok(kids.length >= 1, 'the ip monitor child is running');
    for (const k of kids) {
      for (const [, set, hex] of threadSets(k)) assert.ok((BigInt(`0x${hex}`) & ~0x1000n) === 0n, `child ${k} Cap${set} ${hex}`);
    }
    const caps = status['capabilities'] as {
      held: Record<string, string[]>;
      threads: number;
      threadsDiffering: number;
      rawSockets: { ipv4: boolean; ipv6: boolean };
      reexecuted: boolean;
    };
    assert.ok(caps, JSON.stringify(status));
    for (const s of ['effective', 'permitted', 'inheritable', 'bounding', 'ambient']) assert.deepEqual(caps.held[s], ['net_admin'], s);
    assert.equal(caps.threadsDiffering, 0);
    assert.equal(caps.reexecuted, true);
    assert.deepEqual(caps.rawSockets, { ipv4: true, ipv6: true, errors: [] });
    assert.match(output(), /capabilities: effective CAP_NET_ADMIN, bounding CAP_NET_ADMIN/);
    // REJECT's replies still go out after the drop: a reset (v4, v6) and an ICMP port unreachable.
    assert.equal(await probe(TCP_PROBE, THREE_HOST.server4, 7003), 'ECONNREFUSED', output());
    assert.equal(await probe(TCP_PROBE, THREE_HOST.server6, 7003), 'ECONNREFUSED', output());
    assert.equal(await probe(UDP_PROBE, THREE_HOST.server4, 7004), 'ECONNREFUSED', output());
    assert.equal(await udpExchange(client(), server(), THREE_HOST.server4, 7001, 5), 5, output());
    assert.equal(await udpExchange(client(), server(), THREE_HOST.server4, 7002, 5), 0, output());
  }

  it('as root: drops all but CAP_NET_ADMIN in every thread (same pid), REJECT replies, reloads a 0600 file, removes its hooks', async () => {
    const rules = path.join(dir, 'rules.v4');
    fs.writeFileSync(rules, RULES4(7001), { mode: 0o600 });
    const rules6 = path.join(dir, 'rules.v6');
    fs.writeFileSync(rules6, RULES6, { mode: 0o600 });
    const control = path.join(dir, 'control.sock');
    const d = await start([], ['--rules', rules, '--rules6', rules6, '--queue', '23', '--control', control, '--metrics', 'off'], control);
    try {
      const pid = Number(d.status['pid']);
      assert.equal(pid, d.child.pid, 'the re-executed daemon kept its pid');
      assert.match(fs.readFileSync(`/proc/${pid}/status`, 'utf8'), /^Uid:\s+0\s/m);
      await checkServing(pid, d.status, d.output);
      const st = (await controlRequest(control, { cmd: 'status' })) as { packets?: { replies: number; replyErrors: number } };
      assert.ok((st.packets?.replies ?? 0) >= 3 && st.packets?.replyErrors === 0, JSON.stringify(st.packets));
      // A reload without CAP_DAC_OVERRIDE: root still reads its own 0600 file in its own 0700 directory.
      fs.writeFileSync(rules, RULES4(7002), { mode: 0o600 });
      const r = await controlRequest(control, { cmd: 'reload' });
      assert.equal(r.ok, true, JSON.stringify(r));
      assert.equal(await udpExchange(client(), server(), THREE_HOST.server4, 7002, 5), 5, d.output());
      assert.equal(await udpExchange(client(), server(), THREE_HOST.server4, 7001, 5), 0, d.output());
      assert.match(await kernelRules(fw()), FORWARD_HOOK);
    } finally {
      assert.equal(await d.stop(), 0, d.output());
    }
    // iptables, run as root with CAP_NET_ADMIN alone (the bounding set), took the hooks out.
    assert.doesNotMatch(await kernelRules(fw()), /NFQWALL/, 'hooks removed at stop');
  });

  it('as root with a metrics port below 1024: CAP_NET_BIND_SERVICE until the port is bound, then the main thread holds CAP_NET_ADMIN alone', async () => {
    const rules = path.join(dir, 'rules.v4');
    fs.writeFileSync(rules, RULES4(7001), { mode: 0o600 });
    const control = path.join(dir, 'control.sock');
    const d = await start([], ['--rules', rules, '--queue', '25', '--control', control, '--metrics', '127.0.0.1:80'], control);
    try {
      const pid = Number(d.status['pid']);
      const main = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      for (const set of ['Inh', 'Prm', 'Eff', 'Bnd', 'Amb']) assert.match(main, new RegExp(`^Cap${set}:\\s+${NET_ADMIN_ONLY}$`, 'm'), `Cap${set}`);
      // The documented exception: threads Node started before the port was bound keep the start-only set
      // (NET_ADMIN, NET_BIND_SERVICE, SETPCAP), and status counts them.
      const startOnly = 0x1000n | 0x400n | 0x100n;
      const differing = new Set<string>();
      for (const [tid, set, hex] of threadSets(pid)) {
        assert.equal(BigInt(`0x${hex}`) & ~startOnly, 0n, `thread ${tid} Cap${set} ${hex}`);
        if (hex !== NET_ADMIN_ONLY) differing.add(tid);
      }
      const caps = d.status['capabilities'] as { threadsDiffering: number; held: Record<string, string[]> };
      assert.deepEqual(caps.held['bounding'], ['net_admin']);
      assert.equal(caps.threadsDiffering, differing.size);
      const scrape = await fw().exec([process.execPath, '-e',
        "require('node:http').get('http://127.0.0.1:80/metrics', (r) => { let b = ''; r.on('data', (c) => (b += c)); r.on('end', () => console.log(b)); })"],
      { timeoutMs: 10_000 });
      assert.match(scrape.stdout, /^nfqwall_/m, 'metrics served on port 80');
      assert.equal(await probe(TCP_PROBE, THREE_HOST.server4, 7003), 'ECONNREFUSED', d.output());
    } finally {
      assert.equal(await d.stop(), 0, d.output());
    }
  });

  it("as systemd/nfqwall.service starts it (uid 65534, NET_ADMIN NET_RAW SETPCAP): CAP_NET_ADMIN alone once serving, REJECT replies", async () => {
    fs.chmodSync(dir, 0o755);
    const rules = path.join(dir, 'rules.v4');
    fs.writeFileSync(rules, RULES4(7001), { mode: 0o644 });
    const rules6 = path.join(dir, 'rules.v6');
    fs.writeFileSync(rules6, RULES6, { mode: 0o644 });
    const run = path.join(dir, 'run');
    fs.mkdirSync(run, { mode: 0o700 });
    fs.chownSync(run, 65534, 65534);
    const control = path.join(run, 'control.sock');
    const caps = '+net_admin,+net_raw,+setpcap';
    const wrap = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', `--inh-caps=-all,${caps}`,
      `--ambient-caps=-all,${caps}`, `--bounding-set=-all,${caps}`, '--'];
    const d = await start(wrap, ['--rules', rules, '--rules6', rules6, '--queue', '24', '--control', control, '--metrics', 'off'], control);
    try {
      const pid = Number(d.status['pid']);
      assert.match(fs.readFileSync(`/proc/${pid}/status`, 'utf8'), /^Uid:\s+65534\s/m);
      await checkServing(pid, d.status, d.output);
    } finally {
      assert.equal(await d.stop(), 0, d.output());
    }
    assert.doesNotMatch(await kernelRules(fw()), /NFQWALL/, 'hooks removed at stop');
  });
});
