// nfqwall trace end to end without root: the processor asks the hub only while someone traces, and the control
// socket's streaming `trace` command delivers events until the client closes.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { craftPacket } from '../../src/engine/craft';
import type { Decision, PacketInput } from '../../src/engine/decision';
import { Engine } from '../../src/engine/engine';
import { StaticHost } from '../../src/engine/host';
import { EmptySets } from '../../src/engine/sets';
import type { PacketBatch } from '../../src/native';
import { parseRuleset } from '../../src/rules/parse';
import { BatchProcessor, type Decider } from '../../src/daemon/processor';
import { ControlServer, controlRequest } from '../../src/daemon/control';
import { parseTraceFilter, TraceHub, traceHandler, type TraceEvent } from '../../src/daemon/trace';

const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp -m udp --dport 5001 -j DROP
COMMIT
`;

function udpBytes(dport: number): Uint8Array {
  return craftPacket({ family: 4, src: Uint8Array.of(198, 18, 0, 2), dst: Uint8Array.of(198, 19, 0, 2), proto: 17, sport: 40000, dport });
}

/** A FORWARD (hook 2) batch of IPv4 UDP packets to these ports. */
function batch(ports: number[]): PacketBatch {
  const pkts = ports.map(udpBytes);
  const n = pkts.length;
  const offsets = new Uint32Array(n + 1);
  let off = 0;
  pkts.forEach((p, i) => {
    offsets[i] = off;
    off += p.length;
  });
  offsets[n] = off;
  const data = new Uint8Array(off);
  pkts.forEach((p, i) => data.set(p, offsets[i]));
  return {
    seq: 0,
    count: n,
    ids: Uint32Array.from(pkts, (_, i) => i + 1),
    hooks: new Uint8Array(n).fill(2),
    protos: new Uint16Array(n).fill(0x0800),
    marks: new Uint32Array(n),
    inIf: new Uint32Array(n),
    outIf: new Uint32Array(n),
    physInIf: new Uint32Array(n),
    physOutIf: new Uint32Array(n),
    uids: new Uint32Array(n).fill(0xffffffff),
    gids: new Uint32Array(n).fill(0xffffffff),
    origLens: Uint32Array.from(pkts, (p) => p.length),
    flags: new Uint8Array(n),
    hwAddrs: new Uint8Array(n * 6),
    hwLens: new Uint8Array(n),
    offsets,
    data,
  };
}

/** The engine, counting the decisions asked with a path. */
class CountingEngine implements Decider {
  traced = 0;
  constructor(private readonly engine: Engine) {}
  decide(input: PacketInput, opts?: { trace?: boolean }): Decision {
    if (opts?.trace === true) this.traced++;
    return this.engine.decide(input, opts);
  }
}

function setup(): { hub: TraceHub; engine: CountingEngine; processor: BatchProcessor } {
  const rules = parseRuleset(RULES, 'stream.rules');
  const engine = new CountingEngine(new Engine({ rules4: rules, host: new StaticHost(), sets: new EmptySets() }));
  const hub = new TraceHub(() => rules);
  const processor = new BatchProcessor(engine, { name: () => undefined }, { failOpen: false, tracer: hub });
  return { hub, engine, processor };
}

describe('trace in the processor', () => {
  it('asks for no path while nobody traces, and only for filtered packets while someone does', () => {
    const { hub, engine, processor } = setup();
    const v = processor.process(batch([5000, 5001, 5001]));
    assert.deepEqual([...v.verdicts], [1, 0, 0]);
    assert.equal(engine.traced, 0);
    assert.equal(hub.stats.traced, 0);
    const got: TraceEvent[] = [];
    const off = hub.subscribe(parseTraceFilter({ dport: 5001 }), {
      write: (l) => {
        got.push((JSON.parse(l) as { trace: TraceEvent }).trace);
        return true;
      },
    });
    const v2 = processor.process(batch([5000, 5001, 5002]));
    assert.deepEqual([...v2.verdicts], [1, 0, 1], 'tracing does not change a verdict');
    assert.equal(engine.traced, 1);
    assert.equal(got.length, 1);
    assert.equal(got[0]!.verdict, 'drop');
    assert.match(got[0]!.lines[1]!, /^trace id [0-9a-f]{8} ip filter FORWARD rule -A FORWARD -p udp -m udp --dport 5001 -j DROP \(verdict drop\)$/);
    off();
    processor.process(batch([5001]));
    assert.equal(engine.traced, 1);
  });
});

describe('trace over the control socket', () => {
  let dir = '';
  let server: ControlServer | undefined;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-trace-'));
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
    const t0 = Date.now();
    return new Promise((resolve, reject) => {
      const poll = (): void => {
        if (cond()) resolve();
        else if (Date.now() - t0 > ms) reject(new Error(`timed out waiting for ${what}`));
        else setTimeout(poll, 10);
      };
      poll();
    });
  }

  it('refuses a bad filter with an error answer', async () => {
    const { hub } = setup();
    const sock = path.join(dir, 'c.sock');
    server = await ControlServer.listen(sock, { trace: traceHandler(hub) });
    const res = await controlRequest(sock, { cmd: 'trace', filter: { dport: 'x' } });
    assert.equal(res.ok, false);
    assert.match(res.ok ? '' : res.error, /"dport" must be a port/);
    const res2 = await controlRequest(sock, { cmd: 'trace', filtre: {} });
    assert.equal(res2.ok, false);
    assert.equal(hub.active, false);
  });

  it('streams one JSON line per event after the answer and drops the subscriber when the client closes', async () => {
    const { hub, processor } = setup();
    const sock = path.join(dir, 'c.sock');
    // Short deadlines: a streaming connection must outlive them.
    server = await ControlServer.listen(sock, { trace: traceHandler(hub) }, { idleTimeoutMs: 50, requestTimeoutMs: 50 });
    const c = net.connect(sock);
    const lines: string[] = [];
    let buf = '';
    c.setEncoding('utf8');
    c.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
    await new Promise<void>((resolve, reject) => {
      c.once('connect', resolve);
      c.once('error', reject);
    });
    c.write(JSON.stringify({ cmd: 'trace', filter: { dport: 5001 } }) + '\n');
    await waitFor(() => lines.length >= 1, 5000, 'the answer');
    assert.deepEqual(JSON.parse(lines[0]!), { ok: true, tracing: true, filter: { dport: 5001 } });
    assert.equal(hub.active, true);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(c.destroyed, false, 'the idle deadline does not close a trace');
    processor.process(batch([5001, 5000, 5001]));
    await waitFor(() => lines.length >= 3, 5000, 'two events');
    const events = lines.slice(1).map((l) => (JSON.parse(l) as { trace: TraceEvent }).trace);
    assert.deepEqual(events.map((e) => e.verdict), ['drop', 'drop']);
    c.destroy();
    await waitFor(() => !hub.active, 5000, 'the subscriber to go');
    assert.equal(hub.stats.subscribers, 0);
  });

  it('the daemon ends the streams when it stops, so closing the control socket does not wait for tracers', async () => {
    const { hub } = setup();
    const sock = path.join(dir, 'c.sock');
    server = await ControlServer.listen(sock, { trace: traceHandler(hub) });
    const c = net.connect(sock);
    let got = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => (got += d));
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    c.on('error', () => undefined);
    c.write(JSON.stringify({ cmd: 'trace' }) + '\n');
    await waitFor(() => got.includes('"tracing":true'), 5000, 'the answer');
    hub.close();
    const s = server;
    server = undefined;
    const t0 = Date.now();
    await s.close();
    await closed;
    assert.ok(Date.now() - t0 < 3000, 'the control socket closed promptly');
    await waitFor(() => !hub.active, 5000, 'the subscriber to go');
  });
});
