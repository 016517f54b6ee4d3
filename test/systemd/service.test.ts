// nfqwall under a real systemd: a throwaway systemd is booted as PID 1 inside the lab's fw namespace, exactly as
// ../shared/lab/systemd-boot.sh shows (own network namespace; private mounts with tmpfs /run, /tmp, /var/tmp;
// tmpfiles masked; units under /run/systemd/system). The unit is installed by `nfqwall install-service` pointing at
// this checkout, then started, reloaded (good and broken files), hung (SIGSTOP: the watchdog must restart it) and
// stopped. Every wait is bounded; the systemd is SIGKILLed and the namespaces deleted whatever happens.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { cliPath, FORWARD_HOOK, kernelRules, sleep } from '../lab/daemon';
import { skipUnlessRoot, THREE_HOST, threeHostSpec, useLab, type Host } from '../lab/lab';
import { udpExchange } from '../lab/traffic';
import { packageRoot } from '../paths';

const BOOT_SCRIPT = path.resolve(packageRoot(), '..', 'shared', 'lab', 'systemd-boot.sh');
const SYSTEMD = '/lib/systemd/systemd';
/** Where the test's files live inside the private /run of the test systemd. */
const SVC_ROOT = '/run/nfqw-svc';
const CONF_DIR = `${SVC_ROOT}/etc/nfqwall`;
const RULES = `${CONF_DIR}/rules.v4`;
const LOG = `${SVC_ROOT}/nfqwall.log`;

function rules(accept: number, drop: number): string {
  return `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp --dport ${accept} -m comment --comment "allowed" -j ACCEPT
-A FORWARD -p udp --dport ${drop} -j DROP
-A FORWARD -p tcp --dport 7003 -j REJECT --reject-with tcp-reset
COMMIT
`;
}

// The systemd drop-in for the lab: no default dependencies (nothing of the machine's boot is pulled in), a short
// watchdog so the hang test is quick, the log in the private /run, and no core file from the watchdog's SIGABRT.
const DROP_IN = `[Unit]
DefaultDependencies=no
[Service]
WatchdogSec=3s
RestartSec=500ms
StandardOutput=append:${LOG}
StandardError=inherit
LimitCORE=0
# The checkout this test runs from may sit under /tmp (CI clones anywhere), which the unit's PrivateTmp hides.
BindReadOnlyPaths=${packageRoot()}
`;

// argv: addr port timeoutMs. Prints the outcome of a TCP connect: `connected`, or the error code.
const TCP_PROBE = `
const net = require('node:net');
const [addr, port, ms] = process.argv.slice(1);
const c = net.connect({ host: addr, port: Number(port) });
const t = setTimeout(() => { process.stdout.write('timeout\\n'); process.exit(0); }, Number(ms));
c.on('connect', () => { clearTimeout(t); process.stdout.write('connected\\n'); process.exit(0); });
c.on('error', (e) => { clearTimeout(t); process.stdout.write(e.code + '\\n'); process.exit(0); });
`;

// Prints the body of http://127.0.0.1:9469/metrics (the unit's default endpoint).
const SCRAPE = `
require('node:http').get('http://127.0.0.1:9469/metrics', (res) => {
  let b = ''; res.setEncoding('utf8'); res.on('data', (d) => (b += d)); res.on('end', () => process.stdout.write(b));
}).on('error', (e) => { process.stdout.write('error ' + e.message + '\\n'); });
`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(argv: string[], timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

function nsInode(pid: number | 'self', ns: 'net' | 'mnt' | 'pid'): string {
  return fs.readlinkSync(`/proc/${pid}/ns/${ns}`);
}

/** The throwaway systemd: its host PID, and the way to run commands in its namespaces. */
class TestSystemd {
  private constructor(
    readonly pid: number,
    private readonly unshare: ChildProcess,
  ) {}

  static async boot(fw: Host): Promise<TestSystemd> {
    const child = spawn(
      'ip',
      // The boot script mounts tmpfs over /tmp, /run and /var/tmp; a checkout under one of them (CI may clone into
      // /tmp) would vanish for the service. Its tree is first bound onto /mnt inside the private mount namespace only,
      // and put back at its own path once systemd is up (see exposeCheckout).
      [
        'netns', 'exec', fw.ns, 'unshare', '--pid', '--fork', '--mount', '--propagation', 'private', '--mount-proc',
        'sh', '-c', 'mount --bind "$1" /mnt && exec "$2"', 'sh', packageRoot(), BOOT_SCRIPT,
      ],
      { detached: true, stdio: 'ignore' },
    );
    child.unref();
    const unsharePid = child.pid;
    if (unsharePid === undefined) throw new Error('could not start unshare');
    // `ip netns exec` execs unshare (same pid); unshare forks the systemd.
    let pid: number | undefined;
    const deadline = Date.now() + 10_000;
    while (pid === undefined && Date.now() < deadline) {
      try {
        const kids = fs.readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
        for (const k of kids) {
          if (fs.readFileSync(`/proc/${k}/cmdline`, 'utf8').split('\0')[0] === SYSTEMD) pid = Number(k);
        }
      } catch {
        // not there yet
      }
      if (pid === undefined) await sleep(100);
    }
    const sd = new TestSystemd(pid ?? -1, child);
    if (pid === undefined) {
      sd.kill();
      throw new Error('the test systemd did not appear within 10 s');
    }
    // The safety rule, checked before anything is asked of it: its own network (the lab's fw) and mount namespaces.
    const fwNet = (await run(['ip', 'netns', 'exec', fw.ns, 'readlink', '/proc/self/ns/net'])).stdout.trim();
    if (nsInode(pid, 'net') !== fwNet || fwNet === nsInode('self', 'net') || nsInode(pid, 'mnt') === nsInode('self', 'mnt')) {
      sd.kill();
      throw new Error('the test systemd is not confined to the lab network namespace and a private mount namespace');
    }
    await sd.exposeCheckout();
    return sd;
  }

  /** Makes the checkout visible at its own path inside the systemd's mount namespace, where the unit runs it. */
  private async exposeCheckout(): Promise<void> {
    const root = packageRoot();
    if ((await this.exec(['test', '-e', `${root}/package.json`])).code === 0) return;
    const r = await this.exec(['sh', '-c', 'mkdir -p "$1" && mount --bind /mnt "$1"', 'sh', root]);
    if (r.code !== 0) throw new Error(`cannot show the checkout ${root} to the test systemd: ${r.stderr}`);
  }

  /** A command inside the systemd's pid, mount and network namespaces. */
  exec(argv: string[], timeoutMs = 30_000): Promise<Run> {
    return run(['nsenter', '-t', String(this.pid), '-p', '-m', '-n', ...argv], timeoutMs);
  }

  systemctl(...args: string[]): Promise<Run> {
    return this.exec(['systemctl', '--no-pager', ...args], 60_000);
  }

  async show(prop: string): Promise<string> {
    return (await this.systemctl('show', 'nfqwall', '-p', prop, '--value')).stdout.trim();
  }

  /** A path inside the systemd's mount namespace, seen from here. */
  file(p: string): string {
    return `/proc/${this.pid}/root${p}`;
  }

  write(p: string, text: string): void {
    const f = this.file(p);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    // A whole new file at once, as an editor or config manager does.
    fs.writeFileSync(`${f}.tmp`, text);
    fs.renameSync(`${f}.tmp`, f);
  }

  log(): string {
    try {
      return fs.readFileSync(this.file(LOG), 'utf8');
    } catch {
      return '(no log)';
    }
  }

  /** SIGKILL to PID 1 of the namespace ends every process in it. Only our own, checked by its command line. */
  kill(): void {
    for (const pid of [this.pid, this.unshare.pid]) {
      if (pid === undefined || pid <= 0) continue;
      try {
        const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (cmd.includes('systemd') || cmd.includes('unshare')) process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(200);
  }
}

describe('systemd: nfqwall as a service under a throwaway systemd in the lab', function () {
  this.timeout(180_000);
  const env = useLab(threeHostSpec);
  let sd: TestSystemd | undefined;

  before(function () {
    skipUnlessRoot(this, 'systemd service');
    for (const f of [BOOT_SCRIPT, SYSTEMD]) {
      if (!fs.existsSync(f)) throw new Error(`${f} is missing (the lab boot script sits in ../shared; systemd in the systemd package)`);
    }
  });

  after(() => {
    sd?.kill();
    sd = undefined;
  });

  const client = (): Host => env.lab.host('client');
  const server = (): Host => env.lab.host('server');
  const udp = (port: number): Promise<number> => udpExchange(client(), server(), THREE_HOST.server4, port, 5);
  const fail = (msg: string): string => `${msg}\n--- nfqwall log ---\n${sd?.log() ?? ''}`;

  it('boots, installs the unit with install-service, and starts: active only after READY', async () => {
    sd = await TestSystemd.boot(env.lab.host('fw'));
    const s = sd;
    await until('the test systemd answering', 30_000, async () => {
      const r = await s.systemctl('is-system-running');
      return /^(running|degraded|starting)$/m.test(r.stdout) ? true : undefined;
    });
    const inst = await s.exec(
      [process.execPath, cliPath(), 'install-service', '--prefix', SVC_ROOT, '--unit-dir', '/run/systemd/system'],
      60_000,
    );
    assert.equal(inst.code, 0, inst.stderr);
    assert.match(inst.stdout, /wrote \/run\/systemd\/system\/nfqwall\.service/);
    s.write(RULES, rules(7001, 7002));
    s.write('/run/systemd/system/nfqwall.service.d/lab.conf', DROP_IN);
    assert.equal((await s.systemctl('daemon-reload')).code, 0);

    const start = await s.systemctl('start', 'nfqwall');
    assert.equal(start.code, 0, fail(start.stderr));
    assert.equal(await s.show('ActiveState'), 'active');
    // STATUS= lines from the daemon reach systemd (and so did READY=1, or start would not have returned).
    assert.match(await s.show('StatusText'), /^queue 0, late queue 1: 3 rules loaded/);
    assert.equal(await s.show('WatchdogUSec'), '3s');
  });

  it('runs as an unprivileged user with CAP_NET_ADMIN alone in every set of every thread, and REJECT still replies', async () => {
    const s = sd!;
    const main = await s.show('MainPID');
    const st = (await s.exec(['cat', `/proc/${main}/status`])).stdout;
    const uid = /^Uid:\s+(\d+)/m.exec(st)?.[1];
    assert.ok(uid !== undefined && uid !== '0', `uid ${uid}`);
    // CAP_NET_ADMIN is bit 12. The unit grants CAP_NET_RAW and CAP_SETPCAP too: the daemon drops them at start.
    const tasks = (await s.exec(['sh', '-c', `cat /proc/${main}/task/*/status`])).stdout;
    const sets = [...tasks.matchAll(/^Cap(Inh|Prm|Eff|Bnd|Amb):\s+([0-9a-f]+)$/gm)];
    assert.ok(sets.length >= 5 * 8, `a Node process has several threads: ${sets.length / 5}`);
    for (const m of sets) assert.equal(m[2], '0000000000001000', `Cap${m[1]}`);
    const rules4 = await kernelRules(env.lab.host('fw'));
    assert.match(rules4, FORWARD_HOOK);
    // The REJECT reply is sent on a raw socket (CAP_NET_RAW): the client sees a reset, not a timeout.
    const probe = await client().exec([process.execPath, '-e', TCP_PROBE, THREE_HOST.server4, '7003', '3000'], { timeoutMs: 15_000 });
    assert.equal(probe.stdout.trim(), 'ECONNREFUSED', fail('REJECT reply'));
  });

  const scrape = async (): Promise<string> =>
    (await env.lab.host('fw').exec([process.execPath, '-e', SCRAPE], { timeoutMs: 10_000 })).stdout;

  it('filters traffic by the rule file, and serves metrics that count it', async () => {
    assert.equal(await udp(7001), 5, fail('udp 7001'));
    assert.equal(await udp(7002), 0, fail('udp 7002'));
    const text = await scrape();
    assert.match(text, /^nfqwall_rule_packets_total\{family="ipv4",table="filter",chain="FORWARD",rule="allowed"\} 5$/m, text);
    assert.match(text, /^nfqwall_verdicts_total\{verdict="drop"\} [1-9]/m);
  });

  it('systemctl reload puts a changed rule file in force', async () => {
    const s = sd!;
    s.write(RULES, rules(7002, 7001));
    const r = await s.systemctl('reload', 'nfqwall');
    assert.equal(r.code, 0, fail(r.stderr));
    assert.equal(await s.show('ActiveState'), 'active');
    // ExecReload went through the control socket (the file watcher may have reloaded first as well).
    assert.match(s.log(), /reloaded trigger=control/, fail('no control reload'));
    assert.equal(await udp(7002), 5, fail('udp 7002 after reload'));
    assert.equal(await udp(7001), 0, fail('udp 7001 after reload'));
  });

  it('systemctl reload of a broken rule file fails, and the old rules keep working', async () => {
    const s = sd!;
    s.write(RULES, rules(7001, 7002).replace('-j DROP', '-j DROP --bogus'));
    const r = await s.systemctl('reload', 'nfqwall');
    assert.notEqual(r.code, 0, 'reload of a broken file succeeded');
    assert.equal(await s.show('ActiveState'), 'active');
    assert.match(s.log(), /rules\.v4:\d+:\d+: .*--bogus/);
    const text = await scrape();
    assert.match(text, /^nfqwall_config_last_reload_successful 0$/m, text);
    assert.match(text, /^nfqwall_config_reloads_total\{result="failure"\} [1-9]/m);
    assert.equal(await udp(7002), 5, fail('old rules after a failed reload'));
    assert.equal(await udp(7001), 0, fail('old rules after a failed reload'));
  });

  it('a hung daemon (SIGSTOP) stops petting the watchdog and systemd restarts it', async () => {
    const s = sd!;
    s.write(RULES, rules(7002, 7001)); // valid again, so the restart can load it
    await sleep(500);
    const before = await s.show('MainPID');
    const restartsBefore = Number(await s.show('NRestarts'));
    // `kill -STOP 0` would stop this test's own process group: only ever signal a real main PID.
    assert.ok(Number(before) > 1, `the service has no main process to hang (MainPID=${before})`);
    assert.equal((await s.exec(['kill', '-STOP', before])).code, 0);
    const after = await until('a watchdog restart', 30_000, async () => {
      const [pid, restarts, state] = [await s.show('MainPID'), Number(await s.show('NRestarts')), await s.show('ActiveState')];
      return restarts > restartsBefore && state === 'active' && pid !== before && pid !== '0' ? pid : undefined;
    });
    assert.notEqual(after, before);
    assert.match(s.log(), /removed stale/, fail('the restart should clear the hooks the killed daemon left'));
    assert.equal(await udp(7002), 5, fail('udp 7002 after the restart'));
    assert.equal(await udp(7001), 0, fail('udp 7001 after the restart'));
  });

  it('systemctl stop removes every hook rule', async () => {
    const s = sd!;
    const r = await s.systemctl('stop', 'nfqwall');
    assert.equal(r.code, 0, fail(r.stderr));
    assert.equal(await s.show('ActiveState'), 'inactive');
    const left = await kernelRules(env.lab.host('fw'));
    assert.doesNotMatch(left, /NFQWALL/, left);
  });
});
