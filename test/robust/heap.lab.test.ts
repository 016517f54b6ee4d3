// The JavaScript heap's budget (src/daemon/heap.ts, native/heapguard.cc), in a lab: V8's own limit does not bound
// what the daemon loads, and a reload that would pass the budget fails with the running rules in force.
import assert from 'node:assert/strict';
import { kubeProxyRules } from '../../bench/parse';
import { controlRequest } from '../../src/daemon/control';
import type { HeapGuardState } from '../../src/native';
import { Daemon, scratchDir, type StatusJson } from '../lab/daemon';
import { THREE_HOST as A, threeHostSpec, useLab } from '../lab/lab';
import { udpExchange } from '../lab/traffic';

const QUEUE = 11;
/** nfqwall's default `--metrics 127.0.0.1:9469`, in fw. */
const METRICS_PORT = 9469;
const filter = (dropPort: number): string => `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp -m udp --dport ${dropPort} -j DROP
-A FORWARD -j ACCEPT
COMMIT
`;
/** 10,000 kube-proxy services beside the filter: about 140 MiB of heap once loaded (bench/parse.ts's generator). */
const big = (dropPort: number): string => filter(dropPort) + kubeProxyRules(10_000, 3);

const MiB = 2 ** 20;
const heapOf = (s: StatusJson): HeapGuardState => s['heap'] as HeapGuardState;

describe('robust: the heap budget (lab)', function () {
  this.timeout(180_000);
  const env = useLab(threeHostSpec);
  let scratch: ReturnType<typeof scratchDir> | undefined;
  let daemon: Daemon | undefined;
  afterEach(async function () {
    this.timeout(30_000);
    if (daemon?.running === true) await daemon.stop('SIGTERM');
    daemon = undefined;
    scratch?.cleanup();
    scratch = undefined;
  });

  const start = async (rules: string, nodeFlags: string[], heapLimit: string): Promise<Daemon> => {
    scratch ??= scratchDir();
    const file = scratch.write('rules.v4', rules);
    daemon = await Daemon.start(
      env.lab.host('fw'),
      `${scratch.dir}/control.sock`,
      { rules: file, queue: QUEUE, wrap: (argv) => [argv[0]!, ...nodeFlags, ...argv.slice(1), '--heap-limit', heapLimit] },
      120_000,
    );
    return daemon;
  };
  const probe = (port: number): Promise<number> => udpExchange(env.lab.host('client'), env.lab.host('server'), A.server4, port, 10, 1_000);

  it('loads and reloads a ruleset larger than V8\'s own limit when the budget holds it', async () => {
    // V8 alone would end the process at 64 MiB; the budget lets the heap grow to 512.
    const d = await start(big(5001), ['--max-old-space-size=64'], '512');
    let heap = heapOf(await d.status());
    assert.equal(heap.budget, 512 * MiB);
    assert.ok(heap.raises >= 1, `the limit grew to the budget: ${JSON.stringify(heap)}`);
    assert.ok(heap.used > 64 * MiB, `the rules take more than V8's own limit: ${JSON.stringify(heap)}`);
    assert.equal(heap.overruns, 0);
    assert.equal(await probe(5001), 0, 'the rules are in force: 5001 dropped');
    assert.equal(await probe(5002), 10);

    scratch!.write('rules.v4', big(5002));
    const r = await d.reload();
    assert.equal(r.ok, true, JSON.stringify(r));
    heap = heapOf(await d.status());
    assert.equal(heap.overruns, 0, JSON.stringify(heap));
    assert.equal(await probe(5002), 0, 'the reloaded rules are in force: 5002 dropped');
    assert.equal(await probe(5001), 10);
  });

  it('a small ruleset under a budget above V8\'s own limit: the heap keeps room to grow, and no full collection runs every megabyte', async () => {
    // 16 GiB: above V8's own limit (about 4 GiB) on any machine, as the default budget (half the memory) is on one
    // with more than 8 GiB. The limit used to be lowered to the heap's size, some 10 MB, and stayed there: V8 then
    // collected in full 12-18 times a second under these requests.
    const d = await start(filter(5001), [], '16384');
    const heap = heapOf(await d.status());
    assert.ok(heap.limit >= 64 * MiB && heap.used * 4 < heap.limit, `the limit leaves the heap room: ${JSON.stringify(heap)}`);
    const majors = async (): Promise<number> => {
      const line = (await d.metrics(METRICS_PORT)).split('\n').find((l) => l.startsWith('nodejs_gc_duration_seconds_count{kind="major"} '));
      return line === undefined ? 0 : Number(line.split(' ')[1]);
    };
    const before = await majors();
    for (let i = 0; i < 400; i++) await controlRequest(d.control, { cmd: 'status' });
    const after = await majors();
    assert.ok(after - before <= 3, `${after - before} full collections during 400 status requests`);
    assert.equal(heapOf(await d.status()).overruns, 0);
  });

  it('a reload that would pass the budget fails naming it; the running rules stay, and a later reload that fits works', async () => {
    const d = await start(filter(5001), [], '128');
    assert.equal(heapOf(await d.status()).budget, 128 * MiB);
    assert.equal(await probe(5001), 0);

    scratch!.write('rules.v4', big(5002));
    const failed = await d.reload();
    assert.equal(failed.ok, false, 'a 10,000-service ruleset does not fit in 128 MiB beside the running one');
    assert.match(failed.error ?? '', /reload: the JavaScript heap reached its budget of 128 MiB .*raise heap_limit/);
    const status = await d.status();
    const reloads = status['reloads'] as { failure: number; lastSuccessful: boolean; lastError?: string };
    assert.equal(reloads.lastSuccessful, false);
    assert.match(reloads.lastError ?? '', /heap reached its budget/);
    const heap = heapOf(status);
    assert.ok(heap.overruns >= 1, JSON.stringify(heap));
    assert.equal(heap.inReserve, false, 'the reserve was taken back');
    assert.equal(await probe(5001), 0, 'the running rules stay: 5001 dropped');
    assert.equal(await probe(5002), 10, 'the running rules stay: 5002 passes');

    scratch!.write('rules.v4', filter(5002));
    const ok = await d.reload();
    assert.equal(ok.ok, true, JSON.stringify(ok));
    assert.equal(await probe(5002), 0, 'the reload that fits is in force');
    assert.equal(await probe(5001), 10);
    assert.ok(d.running, 'the daemon lives on');
  });
});
