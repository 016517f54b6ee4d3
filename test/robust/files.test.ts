// StrictModes for rule, ipset and configuration files: what is refused, what the message says, and that the daemon's
// loader (start and reload) refuses before reading. Then privilege in a lab (root): `nfqwall run` refuses a
// configuration file writable by others, and the daemon runs as an unprivileged uid with CAP_NET_ADMIN alone, which
// every part of it needs except REJECT's replies (a raw socket: CAP_NET_RAW, as systemd/nfqwall.service grants).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkFileSafety, fileProblems, UnsafeFileError } from '../../src/daemon/files';
import { loadRulesets } from '../../src/daemon/daemon';
import { controlRequest } from '../../src/daemon/control';
import { cliPath, FORWARD_HOOK, kernelRules, sleep } from '../lab/daemon';
import { Lab, skipUnlessRoot, THREE_HOST, threeHostSpec, type Host } from '../lab/lab';
import { tcpConnect, udpExchange } from '../lab/traffic';

const RULES = '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp --dport 53 -j ACCEPT\nCOMMIT\n';
const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;
const me = (): number => (typeof process.geteuid === 'function' ? process.geteuid() : 0);

describe('robust: rule file permissions (StrictModes)', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-files-'));
    file = path.join(dir, 'rules.v4');
    fs.writeFileSync(file, RULES, { mode: 0o644 });
    fs.chmodSync(file, 0o644);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('accepts a 0644 file in a 0700 directory under the sticky /tmp', () => {
    assert.deepEqual(fileProblems(file), []);
    checkFileSafety([file]);
    assert.equal(loadRulesets({ rules4: file }).rules4?.family, 4);
  });

  for (const [mode, who] of [
    [0o664, 'group'],
    [0o646, 'others'],
    [0o666, 'group and others'],
  ] as const) {
    it(`refuses a file writable by ${who} (${mode.toString(8)}) and says how to fix it`, () => {
      fs.chmodSync(file, mode);
      const problems = fileProblems(file);
      assert.equal(problems.length, 1);
      assert.match(problems[0]!, new RegExp(`^${file}: writable by ${who} \\(mode 0${mode.toString(8)}\\); fix: chmod go-w ${file}$`));
      assert.throws(() => checkFileSafety([file]), (err: unknown) => {
        assert.ok(err instanceof UnsafeFileError);
        assert.equal(err.file, file);
        assert.match(err.message, /refusing to trust/);
        assert.match(err.message, /chmod go-w/);
        return true;
      });
    });
  }

  it('refuses a group- or world-writable directory above the file, naming the directory', () => {
    const sub = path.join(dir, 'etc');
    fs.mkdirSync(sub);
    const f = path.join(sub, 'rules.v4');
    fs.writeFileSync(f, RULES);
    fs.chmodSync(f, 0o644);
    fs.chmodSync(sub, 0o755);
    assert.deepEqual(fileProblems(f), []);
    fs.chmodSync(dir, 0o777);
    const problems = fileProblems(f);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, new RegExp(`^directory ${dir} \\(above ${f}\\): writable by group and others .*chmod go-w ${dir}$`));
    fs.chmodSync(dir, 0o770);
    assert.match(fileProblems(f)[0]!, /writable by group \(mode 0770\)/);
  });

  it('accepts a sticky world-writable directory (like /tmp), refuses the same without the sticky bit', () => {
    fs.chmodSync(dir, 0o1777);
    assert.deepEqual(fileProblems(file), []);
    fs.chmodSync(dir, 0o777);
    assert.equal(fileProblems(file).length, 1);
    fs.chmodSync(dir, 0o700);
  });

  it('refuses a file owned by a uid that is neither root nor the daemon user', function () {
    // Without root a file cannot be given away; pretend instead that only some other uid may own it.
    const problems = fileProblems(file, { owners: [me() + 4242] });
    assert.ok(problems.some((p) => p.startsWith(`${file}: owned by uid ${me()}`) && p.includes(`chown root ${file}`)), problems.join('\n'));
    if (!isRoot()) return;
    fs.chownSync(file, 65534, 65534);
    assert.match(fileProblems(file)[0]!, /owned by uid 65534, not root; fix: chown root/);
  });

  it('follows symbolic links: an unsafe target behind a safe link is refused', () => {
    const evil = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-files-evil-'));
    try {
      const target = path.join(evil, 'real.rules');
      fs.writeFileSync(target, RULES);
      fs.chmodSync(target, 0o666);
      const link = path.join(dir, 'link.rules');
      fs.symlinkSync(target, link);
      const problems = fileProblems(link);
      assert.ok(problems.some((p) => p.startsWith(`${target}: writable`)), problems.join('\n'));
    } finally {
      fs.rmSync(evil, { recursive: true, force: true });
    }
  });

  it('leaves a missing file to the reader, which names it', () => {
    const gone = path.join(dir, 'missing.rules');
    assert.deepEqual(fileProblems(gone), []);
    assert.throws(() => loadRulesets({ rules4: gone }), /missing\.rules/);
  });

  it('the loader (daemon start and every reload) refuses an unsafe rule or ipset file before reading it', () => {
    const ipset = path.join(dir, 'sets.ipset');
    fs.writeFileSync(ipset, 'create blocked hash:ip family inet\n');
    fs.chmodSync(ipset, 0o644);
    assert.ok(loadRulesets({ rules4: file, ipsets: [ipset] }).sets);
    fs.chmodSync(ipset, 0o666);
    assert.throws(() => loadRulesets({ rules4: file, ipsets: [ipset] }), (err: unknown) => {
      assert.ok(err instanceof UnsafeFileError);
      assert.equal(err.file, ipset);
      return true;
    });
    fs.chmodSync(ipset, 0o644);
    fs.chmodSync(file, 0o620);
    assert.throws(() => loadRulesets({ rules4: file }), /chmod go-w/);
  });
});

/** Polls the control socket until the daemon answers status; throws with its output when it exits or never answers. */
async function waitStatus(control: string, running: () => boolean, output: () => string, ms = 20_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!running()) throw new Error(`nfqwall exited before answering:\n${output()}`);
    const r = await controlRequest(control, { cmd: 'status' }, 2_000).catch(() => undefined);
    if (r?.ok === true) return r;
    await sleep(200);
  }
  throw new Error(`nfqwall did not answer status within ${ms} ms:\n${output()}`);
}

describe('robust: privilege (lab)', function () {
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
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-priv-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const fw = (): Host => lab!.host('fw');

  /** `nfqwall run ARGS` in fw, prefixed by `wrap` (setpriv); resolves once it answers, with a stop function. */
  async function start(wrap: string[], args: string[], control: string): Promise<{ status: Record<string, unknown>; output: () => string; stop: () => Promise<void> }> {
    const child = fw().spawn([...wrap, process.execPath, cliPath(), 'run', ...args]);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const running = (): boolean => child.exitCode === null && child.signalCode === null;
    const stop = async (): Promise<void> => {
      if (running()) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    };
    try {
      return { status: await waitStatus(control, running, () => out), output: () => out, stop };
    } catch (err) {
      await stop();
      throw err;
    }
  }

  it('nfqwall run refuses a configuration file writable by others, naming it and the fix, and installs nothing; the same file 0644 starts', async () => {
    const rules = path.join(dir, 'rules.v4');
    fs.writeFileSync(rules, RULES);
    fs.chmodSync(rules, 0o644);
    const control = path.join(dir, 'control.sock');
    const conf = path.join(dir, 'nfqwall.conf');
    fs.writeFileSync(conf, `rules = rules.v4\nqueue = 21\ncontrol = ${control}\nmetrics = off\n`);
    fs.chmodSync(conf, 0o646);
    const before = await kernelRules(fw());
    const r = await fw().exec([process.execPath, cliPath(), 'run', '--config', conf], { check: false, timeoutMs: 30_000 });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.ok(r.stderr.includes(`${conf}: writable by others (mode 0646); fix: chmod go-w ${conf}`), r.stderr);
    assert.equal(await kernelRules(fw()), before, 'no hook was installed');
    assert.equal(fs.existsSync(control), false, 'no control socket was made');
    // The mode was the reason: made safe, the same file starts the daemon.
    fs.chmodSync(conf, 0o644);
    const d = await start([], ['--config', conf], control);
    try {
      assert.equal(d.status['queue'], 21);
    } finally {
      await d.stop();
    }
  });

  it('runs as uid 65534 with CAP_NET_ADMIN alone: hooks, queue and filtering work; only REJECT replies fail, counted, the packet still dropped', async () => {
    // The daemon user must reach the files (root-owned, not writable by it) and make its control socket.
    fs.chmodSync(dir, 0o755);
    const rules = path.join(dir, 'rules.v4');
    fs.writeFileSync(rules, [
      '*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]',
      '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      '-A FORWARD -p udp -m udp --dport 7001 -j ACCEPT',
      '-A FORWARD -p tcp -m tcp --dport 7003 -j REJECT --reject-with tcp-reset',
      'COMMIT', '',
    ].join('\n'));
    fs.chmodSync(rules, 0o644);
    const run = path.join(dir, 'run');
    fs.mkdirSync(run, { mode: 0o700 });
    fs.chownSync(run, 65534, 65534);
    const control = path.join(run, 'control.sock');
    const wrap = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all,+net_admin',
      '--ambient-caps=-all,+net_admin', '--bounding-set=-all,+net_admin', '--'];
    const d = await start(wrap, ['--rules', rules, '--queue', '22', '--control', control, '--metrics', 'off'], control);
    try {
      const pid = Number(d.status['pid']);
      const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      assert.match(st, /^Uid:\s+65534\s/m);
      // CAP_NET_ADMIN is bit 12 (0x1000), nothing else, and nothing can be regained.
      assert.match(st, /^CapEff:\s+0000000000001000$/m);
      assert.match(st, /^CapBnd:\s+0000000000001000$/m);
      assert.match(await kernelRules(fw()), FORWARD_HOOK);
      const client = lab!.host('client');
      const server = lab!.host('server');
      assert.equal(await udpExchange(client, server, THREE_HOST.server4, 7001, 5), 5, d.output());
      assert.equal(await udpExchange(client, server, THREE_HOST.server4, 7002, 5), 0, d.output());
      // REJECT: the reset cannot be sent without CAP_NET_RAW, so the client sees no answer; the drop stands.
      assert.equal(await tcpConnect(client, server, THREE_HOST.server4, 7003, 2_000), false);
      const after = await controlRequest(control, { cmd: 'status' });
      assert.ok(after.ok, JSON.stringify(after));
      const p = after['packets'] as { replies: number; replyErrors: number };
      assert.ok(p.replyErrors > 0, JSON.stringify(p));
      assert.equal(p.replies, 0, JSON.stringify(p));
    } finally {
      await d.stop();
    }
    assert.doesNotMatch(await kernelRules(fw()), /NFQWALL/, 'the unprivileged daemon removed its hooks at stop');
  });
});
