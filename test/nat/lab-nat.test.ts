// nfqwall tracking connections and doing NAT end to end in the three-host lab (client — fw — server), each scenario
// run twice on fw: under nfqwall (which exempts the kernel from tracking and tracks itself), and with the same rules
// loaded into the kernel with iptables-restore (which tracks). Both must give the same answers.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Daemon, cliPath, scratchDir } from '../lab/daemon';
import { THREE_HOST, threeHostSpec, useLab, type Host } from '../lab/lab';
import { CORPUS } from '../paths';

const NODE = process.execPath;

// argv: addr port name. Answers every connection with `name peer-address` and closes it.
const SERVER = `
const net = require('node:net');
const [addr, port, name] = process.argv.slice(1);
const srv = net.createServer((c) => { c.on('error', () => {}); c.end(name + ' ' + c.remoteAddress + '\\n'); });
srv.listen(Number(port), addr, () => process.stdout.write('ready\\n'));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

// argv: addr port timeoutMs count. Connects count times in turn; prints one line each: `ok <answer> from <remote>`
// or `fail <code>`.
const CLIENT = `
const net = require('node:net');
const [addr, port, timeoutMs, count] = process.argv.slice(1);
let left = Number(count);
function one() {
  if (left-- <= 0) process.exit(0);
  let got = '';
  let done = false;
  const c = net.connect({ host: addr, port: Number(port) });
  const finish = (line) => { if (done) return; done = true; clearTimeout(t); c.destroy(); process.stdout.write(line + '\\n'); one(); };
  const t = setTimeout(() => finish('fail timeout'), Number(timeoutMs));
  c.on('data', (d) => { got += d; });
  c.on('end', () => finish('ok ' + got.trim() + ' from ' + c.remoteAddress));
  c.on('error', (e) => finish('fail ' + e.code));
}
one();
`;

function waitReady(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`server not ready: ${out}`)), 10_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready\n')) {
        clearTimeout(t);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
}

async function servers(host: Host, list: [addr: string, port: number, name: string][]): Promise<ChildProcess[]> {
  const kids = list.map(([a, p, n]) => host.spawn([NODE, '-e', SERVER, a, String(p), n]));
  await Promise.all(kids.map(waitReady));
  return kids;
}

async function connect(client: Host, addr: string, port: number, count = 1, timeoutMs = 2_000): Promise<string[]> {
  const r = await client.exec([NODE, '-e', CLIENT, addr, String(port), String(timeoutMs), String(count)], {
    timeoutMs: count * (timeoutMs + 500) + 10_000,
  });
  return r.stdout.trim().split('\n');
}

type Mode = 'nfqwall' | 'kernel';

const FLUSH = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
`;

describe('nfqwall NAT and connection tracking in the lab (root, H16)', function () {
  this.timeout(120_000);
  const t = useLab(() => threeHostSpec());
  const scratch = scratchDir();
  after(() => scratch.cleanup());

  const fwServerIf = (): string => t.lab.host('fw').ifname('server');

  /** Runs `body` with `rules` in force on fw, under nfqwall or loaded into the kernel (IPv6 rules with `family` 6). */
  async function withRules<T>(mode: Mode, rules: string, body: () => Promise<T>, family: 4 | 6 = 4): Promise<T> {
    const fw = t.lab.host('fw');
    const restore = family === 4 ? 'iptables-restore' : 'ip6tables-restore';
    if (mode === 'kernel') {
      await fw.exec([restore], { input: rules });
      try {
        return await body();
      } finally {
        await fw.exec([restore], { input: FLUSH });
      }
    }
    const tag = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const file = scratch.write(`rules-${tag}.rules`, family === 4 ? rules : FLUSH);
    const file6 = family === 6 ? scratch.write(`rules6-${tag}.rules`, rules) : undefined;
    const control = path.join(scratch.dir, `c-${tag}.sock`);
    const d = await Daemon.start(fw, control, { rules: file, rules6: file6 });
    try {
      return await body();
    } catch (err) {
      throw new Error(`${err instanceof Error ? err.message : String(err)}\ndaemon output:\n${d.output}`);
    } finally {
      await d.stop();
    }
  }

  const STATEFUL = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -s 198.18.0.0/24 -p tcp -m tcp --dport 8080 -j ACCEPT
COMMIT
`;

  for (const mode of ['nfqwall', 'kernel'] as const) {
    it(`${mode}: a stateful FORWARD lets replies of allowed connections through and blocks unsolicited ones`, async () => {
      const { client, server } = { client: t.lab.host('client'), server: t.lab.host('server') };
      const kids = [
        ...(await servers(server, [[THREE_HOST.server4, 8080, 'srv']])),
        ...(await servers(client, [[THREE_HOST.client4, 9090, 'cli']])),
      ];
      try {
        const [out, back] = await withRules(mode, STATEFUL, async () => [
          await connect(client, THREE_HOST.server4, 8080, 3),
          await connect(server, THREE_HOST.client4, 9090, 1, 1_500),
        ]);
        assert.deepEqual(out, Array(3).fill(`ok srv ${THREE_HOST.client4} from ${THREE_HOST.server4}`));
        assert.deepEqual(back, ['fail timeout'], 'the server cannot open a connection to the client');
      } finally {
        for (const k of kids) k.kill('SIGKILL');
      }
    });
  }

  const dnatRules = (): string => `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 198.18.0.1/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.19.0.2:8080
-A PREROUTING -d 198.18.0.1/32 -p tcp -m tcp --dport 81 -j MARK --set-xmark 0x4000/0x4000
-A PREROUTING -d 198.18.0.1/32 -p tcp -m tcp --dport 81 -j DNAT --to-destination 198.19.0.2:8080
-A POSTROUTING -o ${fwServerIf()} -m mark --mark 0x4000/0x4000 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -d 198.19.0.2/32 -p tcp -m tcp --dport 8080 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
`;

  for (const mode of ['nfqwall', 'kernel'] as const) {
    it(`${mode}: DNAT to the server answers from the fw address; MASQUERADE shows the server fw's address`, async () => {
      const client = t.lab.host('client');
      const kids = await servers(t.lab.host('server'), [[THREE_HOST.server4, 8080, 'srv']]);
      try {
        const [plain, masq] = await withRules(mode, dnatRules(), async () => [
          await connect(client, THREE_HOST.fwClient4, 80, 2),
          await connect(client, THREE_HOST.fwClient4, 81, 2),
        ]);
        assert.deepEqual(plain, Array(2).fill(`ok srv ${THREE_HOST.client4} from ${THREE_HOST.fwClient4}`));
        assert.deepEqual(masq, Array(2).fill(`ok srv ${THREE_HOST.fwServer4} from ${THREE_HOST.fwClient4}`));
      } finally {
        for (const k of kids) k.kill('SIGKILL');
      }
    });
  }

  const SERVICE = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:SVC - [0:0]
:SEP-A - [0:0]
:SEP-B - [0:0]
-A PREROUTING -d 198.18.0.1/32 -p tcp -m tcp --dport 80 -j SVC
-A SVC -m statistic --mode random --probability 0.50000000000 -j SEP-A
-A SVC -j SEP-B
-A SEP-A -p tcp -m tcp -j DNAT --to-destination 198.19.0.2:8080
-A SEP-B -p tcp -m tcp -j DNAT --to-destination 198.19.0.3:8080
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -d 198.18.0.1/32 -p tcp -m tcp --dport 82 -j REJECT --reject-with icmp-port-unreachable
COMMIT
`;

  for (const mode of ['nfqwall', 'kernel'] as const) {
    it(`${mode}: statistic random spreads a service over two backends; REJECT for one without endpoints`, async () => {
      const client = t.lab.host('client');
      const server = t.lab.host('server');
      await server.exec(['ip', 'addr', 'replace', '198.19.0.3/24', 'dev', server.ifname('fw')]);
      const kids = await servers(server, [
        [THREE_HOST.server4, 8080, 'a'],
        ['198.19.0.3', 8080, 'b'],
      ]);
      try {
        const [spread, refused] = await withRules(mode, SERVICE, async () => [
          await connect(client, THREE_HOST.fwClient4, 80, 40),
          await connect(client, THREE_HOST.fwClient4, 82, 1),
        ]);
        const names = spread.map((l) => /^ok (\S+) 198\.18\.0\.2 from 198\.18\.0\.1$/.exec(l)?.[1] ?? l);
        const a = names.filter((n) => n === 'a').length;
        const b = names.filter((n) => n === 'b').length;
        assert.equal(a + b, 40, names.join(', '));
        assert.ok(a > 0 && b > 0, `both backends get connections (a ${a}, b ${b})`);
        assert.deepEqual(refused, ['fail ECONNREFUSED']);
      } finally {
        for (const k of kids) k.kill('SIGKILL');
      }
    });
  }

  const dnat6Rules = (): string => `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 2001:db8::1/128 -p tcp -m tcp --dport 80 -j DNAT --to-destination [2001:db8:1::2]:8080
-A POSTROUTING -o ${fwServerIf()} -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -m conntrack --ctstate NEW -m conntrack --ctstate DNAT -j ACCEPT
COMMIT
`;

  for (const mode of ['nfqwall', 'kernel'] as const) {
    it(`${mode}: IPv6 DNAT + MASQUERADE`, async () => {
      const kids = await servers(t.lab.host('server'), [[THREE_HOST.server6, 8080, 'srv6']]);
      try {
        const got = await withRules(mode, dnat6Rules(), () => connect(t.lab.host('client'), THREE_HOST.fwClient6, 80, 2), 6);
        assert.deepEqual(got, Array(2).fill(`ok srv6 ${THREE_HOST.fwServer6} from 2001:db8::1`));
      } finally {
        for (const k of kids) k.kill('SIGKILL');
      }
    });
  }

  // OUTPUT: filter runs after nat in the same trip, so it must see the DNATed destination; the kernel reroutes the
  // rewritten packet (nf_reroute) to the server.
  const OUTPUT_RULES = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A OUTPUT -d 198.18.0.1/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.19.0.2:8080
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT DROP [0:0]
-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A OUTPUT -d 198.19.0.2/32 -p tcp -m tcp --dport 8080 -j ACCEPT
COMMIT
`;

  for (const mode of ['nfqwall', 'kernel'] as const) {
    it(`${mode}: DNAT in OUTPUT, with filter OUTPUT accepting only the translated destination`, async () => {
      const kids = await servers(t.lab.host('server'), [[THREE_HOST.server4, 8080, 'srv']]);
      try {
        const got = await withRules(mode, OUTPUT_RULES, () => connect(t.lab.host('fw'), THREE_HOST.fwClient4, 80, 2));
        // The source stays the one routing chose for the original destination (no SNAT here).
        assert.deepEqual(got, Array(2).fill(`ok srv ${THREE_HOST.fwClient4} from ${THREE_HOST.fwClient4}`));
      } finally {
        for (const k of kids) k.kill('SIGKILL');
      }
    });
  }

  // kube-proxy's own rules (kubeadm, MASQUERADE --random-fully): ClusterIP 10.96.0.1:443 -> endpoint 192.168.20.100:6443.
  // The VIP is fw's (on lo), the endpoint the server's; the client, outside 10.244.0.0/16, is masqueraded.
  const KUBE = path.join(CORPUS, '26-kubeadm-kube-proxy-random-fully-2025.rules');
  let kubeLab = false;
  async function kubeAddresses(): Promise<void> {
    if (kubeLab) return;
    kubeLab = true;
    const server = t.lab.host('server');
    await t.lab.host('fw').exec(['ip', 'addr', 'add', '10.96.0.1/32', 'dev', 'lo']);
    await t.lab.host('fw').exec(['ip', 'route', 'add', '192.168.20.100/32', 'via', THREE_HOST.server4]);
    await server.exec(['ip', 'addr', 'add', '192.168.20.100/32', 'dev', server.ifname('fw')]);
    await t.lab.host('client').exec(['ip', 'route', 'add', '10.96.0.1/32', 'via', THREE_HOST.fwClient4]);
  }

  for (const mode of ['nfqwall', 'kernel'] as const) {
    it(`${mode}: a kube-proxy corpus file carries a TCP request through DNAT + MASQUERADE --random-fully`, async () => {
      await kubeAddresses();
      const kids = await servers(t.lab.host('server'), [['192.168.20.100', 6443, 'apiserver']]);
      try {
        const got = await withRules(mode, fs.readFileSync(KUBE, 'utf8'), () => connect(t.lab.host('client'), '10.96.0.1', 443, 3));
        assert.deepEqual(got, Array(3).fill(`ok apiserver ${THREE_HOST.fwServer4} from 10.96.0.1`));
      } finally {
        for (const k of kids) k.kill('SIGKILL');
      }
    });
  }

  it('nfqwall conntrack -L lists the tracked connections of a running daemon', async () => {
    const fw = t.lab.host('fw');
    const client = t.lab.host('client');
    const kids = await servers(t.lab.host('server'), [[THREE_HOST.server4, 8080, 'srv']]);
    try {
      const file = scratch.write('list.rules', dnatRules());
      const control = path.join(scratch.dir, 'list.sock');
      const d = await Daemon.start(fw, control, { rules: file });
      try {
        assert.deepEqual(await connect(client, THREE_HOST.fwClient4, 81, 1), [`ok srv ${THREE_HOST.fwServer4} from ${THREE_HOST.fwClient4}`]);
        const r = await fw.exec([NODE, cliPath(), 'conntrack', '-L', '--control', control]);
        const lines = r.stdout.trim().split('\n');
        const hit = lines.find((l) => l.includes('dport=81') && l.includes('src=198.19.0.2') && l.includes(`dst=${THREE_HOST.fwServer4}`));
        assert.ok(hit, `a DNAT+MASQUERADE entry in:\n${r.stdout}`);
        assert.match(r.stderr, /conntrack v1\.4\.\d+ \(conntrack-tools\): \d+ flow entries have been shown\./);
      } finally {
        await d.stop();
      }
    } finally {
      for (const k of kids) k.kill('SIGKILL');
    }
  });

});
