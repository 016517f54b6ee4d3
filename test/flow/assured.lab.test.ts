// The flow cache and ASSURED end to end (root only): a UDP flow with a reply turns ASSURED two seconds after it
// started. While a rule reads the bit (`-m conntrack --ctstatus ASSURED`), a decision the cache stored before must not
// outlive it; once no rule does, the bit is out of the cache's key (flowStatusMask, set again by the reload), so the
// flow's packets keep hitting across it instead of missing at every hook.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { Daemon, scratchDir } from '../lab/daemon';
import { THREE_HOST, threeHostSpec, useLab, type Host } from '../lab/lab';
import { printedUntil } from '../lab/traffic';

const PORT = 6100;

const rules = (assuredRule: string): string => `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
${assuredRule}-A FORWARD -p udp -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT
COMMIT
`;
const READS = rules(`-A FORWARD -p udp -m udp --dport ${PORT} -m conntrack --ctstatus ASSURED -j DROP\n`);
const PLAIN = rules('');

const ECHO = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(Number(process.argv[2]), process.argv[1], () => process.stdout.write('ready\\n'));
`;

// argv: addr port sport ms. One datagram every 100 ms from one source port (one connection) for `ms`; prints
// "<ms since the first> ok|lost" per datagram, a reply counting within 80 ms.
const PINGER = `
const s = require('node:dgram').createSocket('udp4');
const [addr, port, sport, total] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
let t0 = 0, k = 0, waiting = -1, timer;
s.on('message', (m) => { if (Number(m) === waiting) { clearTimeout(timer); process.stdout.write(String(waiting * 100) + ' ok\\n'); waiting = -1; } });
const next = () => {
  if (k * 100 >= total) { s.close(); return; }
  waiting = k;
  const n = k++;
  s.send(String(n), port, addr);
  timer = setTimeout(() => { if (waiting === n) { process.stdout.write(String(n * 100) + ' lost\\n'); waiting = -1; } }, 80);
  setTimeout(next, Math.max(0, t0 + k * 100 - Date.now()));
};
s.bind(sport, () => { t0 = Date.now(); next(); });
`;

interface Ping {
  at: number;
  ok: boolean;
}

async function pings(client: Host, sport: number): Promise<Ping[]> {
  const r = await client.exec([process.execPath, '-e', PINGER, THREE_HOST.server4, String(PORT), String(sport), '3600'], { timeoutMs: 15_000 });
  return [...r.stdout.matchAll(/^(\d+) (ok|lost)$/gm)].map((m) => ({ at: Number(m[1]), ok: m[2] === 'ok' }));
}

describe('flow cache: a UDP flow turning ASSURED (lab)', function () {
  this.timeout(120_000);
  const env = useLab(threeHostSpec);
  const scratch = scratchDir();
  let daemon: Daemon | undefined;
  let echo: ChildProcess | undefined;

  before(async () => {
    const file = scratch.write('assured.rules', READS);
    daemon = await Daemon.start(env.lab.host('fw'), scratch.dir + '/control.sock', { rules: file });
    echo = env.lab.host('server').spawn([process.execPath, '-e', ECHO, THREE_HOST.server4, String(PORT)]);
    await printedUntil(echo, /ready/);
  });

  after(async () => {
    echo?.kill('SIGKILL');
    await daemon?.stop();
    scratch.cleanup();
  });

  it('while a rule reads ASSURED, the cached decision ends when the flow turns ASSURED', async () => {
    const before = await daemon!.flowCacheStats();
    const got = await pings(env.lab.host('client'), 40100);
    const hits = (await daemon!.flowCacheStats()).hits - before.hits;
    const early = got.filter((p) => p.at < 1800);
    const late = got.filter((p) => p.at >= 2400);
    assert.ok(early.length >= 15 && early.every((p) => p.ok), `answered before two seconds: ${JSON.stringify(got)}`);
    assert.ok(late.length >= 10 && late.every((p) => !p.ok), `dropped once ASSURED: ${JSON.stringify(got)}`);
    assert.ok(hits > 0, 'the cache decided some of the early ones');
  });

  it('once no rule reads it, the flow keeps hitting across the change: no miss after its first exchanges', async () => {
    scratch.write('assured.rules', PLAIN);
    const r = await daemon!.reload();
    assert.ok(r.ok, JSON.stringify(r));
    const client = env.lab.host('client');
    const started = pings(client, 40101);
    // The first exchanges teach the cache each hook's decision; from then on, through the change at two seconds, none
    // may miss (with the bit in the key, each hook of each direction missed once more there).
    await new Promise((res) => setTimeout(res, 1000));
    const settled = await daemon!.flowCacheStats();
    const got = await started;
    const after = await daemon!.flowCacheStats();
    assert.ok(got.length >= 30 && got.every((p) => p.ok), `every datagram answered: ${JSON.stringify(got)}`);
    assert.equal(after.misses - settled.misses, 0, `misses after the first second: ${JSON.stringify({ settled, after })}`);
    assert.ok(after.hits - settled.hits >= 2 * 20, 'hits both ways for the rest of the flow');
  });
});
