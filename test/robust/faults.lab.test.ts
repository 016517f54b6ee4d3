// Faults end to end in the three-host lab (root): the daemon SIGKILLed under a sustained UDP flow (fail-open keeps
// it flowing, fail-closed stops it) and restarted over its stale hooks; rule files deleted, made unsafe or full of
// shell metacharacters while it runs. After each, every packet the new daemon received has exactly one verdict.
// The kill-then-probe cases without a flow are in test/lab/foundation.test.ts.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { assertVerdictedOnce, cliPath, Daemon, kernelRules, scratchDir, sleep } from '../lab/daemon';
import { THREE_HOST as A, threeHostSpec, useLab, type Host } from '../lab/lab';
import { udpExchange, udpSink, type UdpSink } from '../lab/traffic';

const QUEUE = 9;
const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp -m udp --dport 5001 -j DROP
-A FORWARD -j ACCEPT
COMMIT
`;
const RULES6 = RULES;

// argv: family addr port ms. Sends one datagram every 4 ms for `ms`, then exits by itself.
const FLOW = `
const s = require('node:dgram').createSocket(process.argv[1]);
const [addr, port, ms] = process.argv.slice(2);
const t0 = Date.now();
const tick = setInterval(() => {
  if (Date.now() - t0 > Number(ms)) { clearInterval(tick); s.close(); return; }
  s.send('flow', Number(port), addr, () => {});
}, 4);
`;

function flow(host: Host, addr: string, port: number, ms: number): ChildProcess {
  return host.spawn([process.execPath, '-e', FLOW, 'udp4', addr, String(port), String(ms)]);
}

/** The verdict accounting of the queue and its late queue. */
async function assertAccounted(d: Daemon): Promise<void> {
  const qs = await d.settledQueues();
  assert.deepEqual(qs.map((q) => q.queue), [QUEUE, QUEUE + 1], 'the queue and its late queue');
  assertVerdictedOnce(qs);
}

/** nfqwall's hook rules with the owner's pid taken out, so two runs' hooks compare equal. */
async function hookShape(fw: Host): Promise<string[]> {
  return (await kernelRules(fw))
    .split('\n')
    .filter((l) => /NFQUEUE|NFQWALL/.test(l))
    .map((l) => l.replace(/\d+/g, 'N'))
    .sort();
}

/** Datagrams the sink gains over `ms`. */
async function gained(sink: UdpSink, ms: number): Promise<number> {
  const a = await sink.count();
  await sleep(ms);
  return (await sink.count()) - a;
}

describe('robust: faults (lab)', function () {
  this.timeout(120_000);
  const env = useLab(threeHostSpec);
  let scratch: ReturnType<typeof scratchDir> | undefined;
  let daemon: Daemon | undefined;
  let sink: UdpSink | undefined;
  let sender: ChildProcess | undefined;

  const fw = (): Host => env.lab.host('fw');
  const start = async (failOpen: boolean): Promise<Daemon> => {
    scratch ??= scratchDir();
    const rules = `${scratch.dir}/rules.v4`;
    if (!fs.existsSync(rules)) scratch.write('rules.v4', RULES);
    if (!fs.existsSync(`${scratch.dir}/rules.v6`)) scratch.write('rules.v6', RULES6);
    daemon = await Daemon.start(fw(), `${scratch.dir}/control.sock`, { rules, rules6: `${scratch.dir}/rules.v6`, queue: QUEUE, failOpen });
    return daemon;
  };
  afterEach(async function () {
    this.timeout(30_000);
    sender?.kill('SIGKILL');
    sender = undefined;
    sink?.stop();
    sink = undefined;
    if (daemon?.running === true) await daemon.stop('SIGTERM');
    daemon = undefined;
    scratch?.cleanup();
    scratch = undefined;
  });

  for (const failOpen of [true, false]) {
    const mode = failOpen ? 'fail-open' : 'fail-closed';
    it(`${mode}: SIGKILL under a sustained UDP flow ${failOpen ? 'keeps it flowing' : 'stops it'}; a restart replaces the stale hooks and filters again`, async () => {
      const d1 = await start(failOpen);
      const hooksBefore = await hookShape(fw());
      sink = await udpSink(env.lab.host('server'), A.server4, 5000);
      sender = flow(env.lab.host('client'), A.server4, 5000, 12_000);
      await sleep(300);
      const flowing = await gained(sink, 1000);
      assert.ok(flowing > 100, `the flow passes the running daemon: ${flowing} datagrams in 1 s`);

      await d1.stop('SIGKILL');
      await sleep(300); // datagrams already past the queue may still arrive
      const after = await gained(sink, 1000);
      if (failOpen) assert.ok(after > 100, `fail-open: the flow goes on without the daemon: ${after} datagrams in 1 s`);
      else assert.ok(after <= 2, `fail-closed: the flow stops without the daemon: ${after} datagrams in 1 s`);
      assert.deepEqual(await hookShape(fw()), hooksBefore, 'the killed daemon left its hooks in place');

      // The restart finds the dead run's hooks, replaces them with its own (one set, not two) and serves the flow.
      const d2 = await start(failOpen);
      assert.deepEqual(await hookShape(fw()), hooksBefore, 'one set of hooks after the restart');
      await sleep(300);
      const resumed = await gained(sink, 1000);
      assert.ok(resumed > 100, `the flow passes the restarted daemon: ${resumed} datagrams in 1 s`);
      assert.equal(await udpExchange(env.lab.host('client'), env.lab.host('server'), A.server4, 5001, 10, 1_000), 0, 'the DROP rule filters again');
      // The DROP rule is in FORWARD, whose trips are the late queue's.
      const q = await d2.queueStats(QUEUE + 1);
      assert.ok(q.dropped >= 10, `the restarted daemon dropped the probes: ${JSON.stringify(q)}`);
      sender.kill('SIGKILL');
      sender = undefined;
      await assertAccounted(d2);
    });
  }

  it('a rule file deleted, unreadable or made writable by others: reload fails, the old rules stay, status names the error', async () => {
    const d = await start(false);
    const file = `${scratch!.dir}/rules.v4`;
    const cli = (args: string[]) => fw().exec([process.execPath, cliPath(), ...args, '--control', d.control], { check: false, timeoutMs: 15_000 });
    const reloads = async (): Promise<{ success: number; failure: number; lastSuccessful: boolean; lastError?: string }> =>
      (await d.status())['reloads'] as { success: number; failure: number; lastSuccessful: boolean; lastError?: string };
    const probe = async (port: number): Promise<number> =>
      udpExchange(env.lab.host('client'), env.lab.host('server'), A.server4, port, 10, 1_000);
    assert.equal(await probe(5000), 10);
    assert.equal(await probe(5001), 0);

    fs.unlinkSync(file);
    const gone = await cli(['reload']);
    assert.equal(gone.code, 1, gone.stdout);
    assert.match(gone.stderr, /the running rules stay/);
    assert.ok(gone.stderr.includes(file), gone.stderr);
    let r = await reloads();
    assert.equal(r.lastSuccessful, false);
    assert.ok(r.lastError?.includes(file), JSON.stringify(r));
    assert.equal(await probe(5000), 10, 'old rules: 5000 passes');
    assert.equal(await probe(5001), 0, 'old rules: 5001 dropped');

    // Unreadable (root reads through any mode, so: a directory where the file was).
    fs.mkdirSync(file, { mode: 0o700 });
    const dir = await cli(['reload']);
    assert.equal(dir.code, 1, dir.stdout);
    assert.ok(dir.stderr.includes(file), dir.stderr);
    assert.match((await reloads()).lastError ?? '', /EISDIR|directory/);
    assert.equal(await probe(5001), 0, 'old rules: 5001 still dropped');
    fs.rmdirSync(file);

    // Back, but writable by everyone: StrictModes refuses it, with the fix in the message.
    fs.writeFileSync(file, RULES.replace('--dport 5001', '--dport 5000'));
    fs.chmodSync(file, 0o666);
    const unsafe = await cli(['reload']);
    assert.equal(unsafe.code, 1);
    assert.ok(unsafe.stderr.includes(`chmod go-w ${file}`), unsafe.stderr);
    r = await reloads();
    assert.equal(r.lastSuccessful, false);
    assert.match(r.lastError ?? '', /writable by group and others/);
    assert.equal(await probe(5001), 0, 'the unsafe file was not put in force');
    assert.equal(await probe(5000), 10, 'the unsafe file was not put in force');

    fs.chmodSync(file, 0o644);
    const ok = await cli(['reload']);
    assert.equal(ok.code, 0, ok.stderr);
    r = await reloads();
    assert.equal(r.lastSuccessful, true);
    assert.equal(r.lastError, undefined);
    assert.equal(await probe(5000), 0, 'the new rules are in force');
    assert.equal(await probe(5001), 10, 'the new rules are in force');
    await assertAccounted(d);
  });

  it('refuses to start on a rule file writable by others, naming it and the fix, and touches nothing', async () => {
    scratch = scratchDir();
    const file = scratch.write('rules.v4', RULES);
    fs.chmodSync(file, 0o646);
    const hooks = await hookShape(fw());
    await assert.rejects(
      Daemon.start(fw(), `${scratch.dir}/control.sock`, { rules: file, queue: QUEUE }, 10_000),
      (err: Error) => err.message.includes(`${file}: writable by others (mode 0646); fix: chmod go-w ${file}`),
    );
    assert.deepEqual(await hookShape(fw()), hooks, 'no hook was installed');
  });

  it('shell metacharacters in comments, LOG prefixes and chain names reach no shell', async () => {
    // Absolute markers for the quoted texts; a relative one (in the daemon's working directory) for the chain name,
    // which cannot hold a slash.
    const marks = ['a', 'b', 'c', 'e'].map((s) => `/tmp/nq${process.pid}${s}`);
    const chainMark = `nq${process.pid}d`;
    const chain = `c;touch\`${chainMark}\``;
    const all = [...marks, path.join(process.cwd(), chainMark)];
    for (const m of all) fs.rmSync(m, { force: true });
    scratch = scratchDir();
    const evil = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:${chain} - [0:0]
-A FORWARD -p udp -m comment --comment "$(touch ${marks[0]}); \`touch ${marks[1]}\` | touch ${marks[3]}" -j LOG --log-prefix "$(touch ${marks[2]})"
-A FORWARD -p udp -j ${chain}
-A ${chain} -j ACCEPT
COMMIT
`;
    const file = scratch.write('rules.v4', evil);
    scratch.write('rules.v6', RULES6);
    daemon = await Daemon.start(fw(), `${scratch.dir}/control.sock`, { rules: file, rules6: `${scratch.dir}/rules.v6`, queue: QUEUE });
    assert.equal(await udpExchange(env.lab.host('client'), env.lab.host('server'), A.server4, 5000, 10, 1_000), 10);
    // The LOG rule ran with the prefix as text, and `nfqwall save` prints the comment back as text.
    await sleep(200);
    assert.ok(daemon.output.includes(`$(touch ${marks[2]})`), `no LOG line with the literal prefix:\n${daemon.output.slice(-2000)}`);
    const saved = await fw().exec([process.execPath, cliPath(), 'save', '-4', '--control', daemon.control], { check: false });
    assert.ok(saved.stdout.includes(`touch ${marks[1]}`), saved.stdout + saved.stderr);
    const reloaded = await fw().exec([process.execPath, cliPath(), 'reload', '--control', daemon.control], { check: false });
    assert.equal(reloaded.code, 0, reloaded.stderr);
    for (const m of all) assert.equal(fs.existsSync(m), false, `${m} was created: something ran a shell`);
    await assertAccounted(daemon);
  });
});
