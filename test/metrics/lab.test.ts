// The metrics endpoint of a real daemon in the three-host lab: traffic of known size and fate crosses fw, and the
// scrape must report exactly that per rule and per verdict.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { cliPath, scratchDir, sleep } from '../lab/daemon';
import { THREE_HOST, threeHostSpec, useLab, type Host } from '../lab/lab';
import { ping, udpSend, udpSink } from '../lab/traffic';

const PORT = 9469;

const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp --dport 7001 -m comment --comment "udp allowed" -j ACCEPT
-A FORWARD -p udp --dport 7002 -j DROP
-A FORWARD -p icmp -j ACCEPT
COMMIT
`;

// Fetches http://127.0.0.1:PORT/PATH inside the host; prints the status line, then the body.
const FETCH = `
const http = require('node:http');
const [port, path, method] = process.argv.slice(1);
const req = http.request({ host: '127.0.0.1', port: Number(port), path, method }, (res) => {
  let b = ''; res.setEncoding('utf8'); res.on('data', (d) => (b += d));
  res.on('end', () => { process.stdout.write(res.statusCode + '\\n' + b); });
});
req.on('error', (e) => { process.stdout.write('error ' + e.message + '\\n'); });
req.end();
`;

async function fetch(host: Host, path = '/metrics', method = 'GET'): Promise<{ status: number; body: string }> {
  const r = await host.exec([process.execPath, '-e', FETCH, String(PORT), path, method], { timeoutMs: 10_000 });
  const nl = r.stdout.indexOf('\n');
  return { status: Number(r.stdout.slice(0, nl)), body: r.stdout.slice(nl + 1) };
}

function value(text: string, name: string, labels = ''): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}${labels} `)) return Number(line.slice(name.length + labels.length + 1));
  }
  return undefined;
}

describe('metrics: a daemon in the lab, scraped after known traffic', function () {
  this.timeout(120_000);
  const env = useLab(threeHostSpec);
  const scratch = scratchDir();
  let child: ChildProcess | undefined;
  let output = '';

  after(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => {
        const t = setTimeout(() => (child?.kill('SIGKILL'), r(undefined)), 10_000);
        child?.once('exit', () => (clearTimeout(t), r(undefined)));
      });
    }
    scratch.cleanup();
  });

  it('counts packets per rule, policy and verdict as sent, on GET /metrics only', async () => {
    const { lab } = env;
    const fw = lab.host('fw');
    const rules = scratch.write('rules.v4', RULES);
    const control = `${scratch.dir}/control.sock`;
    child = fw.spawn([process.execPath, cliPath(), 'run', '--rules', rules, '--control', control, '--metrics', `127.0.0.1:${PORT}`]);
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    // Ready when the endpoint answers (it opens after the hooks are in).
    const deadline = Date.now() + 20_000;
    let first: { status: number; body: string } | undefined;
    while (Date.now() < deadline) {
      assert.equal(child.exitCode, null, `nfqwall exited:\n${output}`);
      first = await fetch(fw);
      if (first.status === 200) break;
      await sleep(200);
    }
    assert.equal(first?.status, 200, `no metrics within 20 s:\n${output}`);

    const server = lab.host('server');
    const client = lab.host('client');
    const sink = await udpSink(server, THREE_HOST.server4, 7001);
    try {
      await udpSend(client, THREE_HOST.server4, 7001, 20);
      await udpSend(client, THREE_HOST.server4, 7002, 15);
      assert.equal(await ping(client, THREE_HOST.server4, 5), 5);
      const until = Date.now() + 5_000;
      while ((await sink.count()) < 20 && Date.now() < until) await sleep(100);
      assert.equal(await sink.count(), 20);
    } finally {
      sink.stop();
    }

    const { status, body } = await fetch(fw);
    assert.equal(status, 200);
    const fwd = (rule: string): string => `{family="ipv4",table="filter",chain="FORWARD",rule="${rule}"}`;
    assert.equal(value(body, 'nfqwall_rule_packets_total', fwd('udp allowed')), 20);
    // IP total length: 20 (IPv4) + 8 (UDP) + 4 ("nfqw").
    assert.equal(value(body, 'nfqwall_rule_bytes_total', fwd('udp allowed')), 20 * 32);
    const dropLine = body.split('\n').find((l) => /^nfqwall_rule_packets_total\{[^}]*chain="FORWARD",rule="#2-/.test(l));
    assert.ok(dropLine, 'no series for the uncommented rule #2');
    assert.equal(Number(dropLine.split(' ')[1]), 15);
    const icmp = body.split('\n').find((l) => /^nfqwall_rule_packets_total\{[^}]*chain="FORWARD",rule="#3-/.test(l));
    assert.equal(Number(icmp?.split(' ')[1]), 10, 'echo requests and replies');
    // Only the DROP rule drops; everything else (the scrapes over lo included) is accepted.
    assert.equal(value(body, 'nfqwall_verdicts_total', '{verdict="drop"}'), 15);
    // JS-side values are read in one synchronous pass and agree exactly; the receive thread keeps counting during
    // the scrape (its own packets are queued too), so `received` may run a few packets ahead of what was decided.
    const decided = value(body, 'nfqwall_slow_path_packets_total')!;
    const accepted = value(body, 'nfqwall_verdicts_total', '{verdict="accept"}')!;
    // The flow cache (docs/flow-cache.md) verdicts settled packets (the echo replies, the scrapes' TCP) natively: the
    // verdicts count them, the slow path does not, and the receive thread may count more of them during the scrape.
    // So does the rule matcher (docs/matcher.md) for the new connections' packets it decides.
    const cached = (value(body, 'nfqwall_flow_cache_hits_total') ?? 0) + (value(body, 'nfqwall_matcher_decided_total') ?? 0);
    const verdicts = accepted + 15 + value(body, 'nfqwall_verdicts_total', '{verdict="queue"}')!;
    assert.ok(Math.abs(verdicts - (decided + cached)) <= 20, `verdicts ${verdicts}, decided ${decided}, cached ${cached}`);
    assert.equal(value(body, 'nfqwall_batch_packets_sum'), decided);
    // PREROUTING and OUTPUT's queue, and the late queue for INPUT, FORWARD and POSTROUTING.
    const received = value(body, 'nfqwall_queue_received_total', '{queue="0"}')! + value(body, 'nfqwall_queue_received_total', '{queue="1"}')!;
    assert.ok(decided + cached >= 45 && received >= decided + cached - 20 && received - decided - cached <= 20, `received ${received}, decided ${decided}, cached ${cached}`);
    const batches = value(body, 'nfqwall_batch_duration_seconds_count')!;
    assert.ok(batches >= 1 && batches <= decided, `${batches} batch samples for ${decided} packets`);
    assert.equal(value(body, 'nfqwall_config_last_reload_successful'), 1);
    // H16: nfqwall tracks connections itself: at least the UDP flow to 7001 and the echo (the dropped flow to 7002
    // leaves none; the scrapes over lo add theirs).
    assert.ok(value(body, 'nfqwall_conntrack_entries')! >= 2, 'tracked connections');
    assert.equal(value(body, 'nfqwall_conntrack_entries_limit'), 262144);
    assert.match(body, /^nfqwall_build_info\{version="[^"]+"\} 1$/m);
    assert.match(body, /^process_resident_memory_bytes \d+/m);
    for (const line of body.split('\n')) {
      const labels = /\{.*\}/.exec(line)?.[0] ?? '';
      if (!line.startsWith('#')) assert.doesNotMatch(labels, /198\.1[89]\.|2001:db8|7001|7002/, line);
    }

    assert.equal((await fetch(fw, '/metrics', 'POST')).status, 405);
    assert.equal((await fetch(fw, '/')).status, 404);
  });
});
