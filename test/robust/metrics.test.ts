// What test/metrics/metrics.test.ts does not cover: clients trickling their request headers (slowloris) must not
// keep scrapes from being answered, and every method but GET and every other path is refused without a byte of the
// metrics. A few 404s and 405s and scrape floods are tested there.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { Metrics, MetricsServer, type MetricsSource, type ProcessorCounts, type ReloadState } from '../../src/daemon/metrics';
import type { QueueStats } from '../../src/native';
import { parseRuleset } from '../../src/rules/parse';
import type { Ruleset } from '../../src/rules/model';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

class Source implements MetricsSource {
  startedAt = Date.now();
  private readonly rs = [parseRuleset('*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n', 'm.rules')];
  rulesets(): Ruleset[] {
    return this.rs;
  }
  processor(): ProcessorCounts {
    return { packets: 0, queued: 0, errors: 0, replies: 0, replyErrors: 0 };
  }
  queueStats(): QueueStats[] {
    return [];
  }
  failOpen(): boolean {
    return false;
  }
  reloads(): ReloadState | undefined {
    return undefined;
  }
}

/** One raw HTTP/1.1 request; resolves with the status line's code (0 when the server hung up) and the whole answer. */
function raw(port: number, request: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(request));
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    const done = (): void => resolve({ status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0), text });
    s.on('close', done);
    s.on('error', () => undefined);
    s.setTimeout(5_000, () => s.destroy());
  });
}

function scrape(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.setTimeout(3000, () => req.destroy(new Error('scrape timed out')));
  });
}

describe('robust: metrics endpoint against trickling clients', function () {
  this.timeout(30_000);

  it('answers every scrape promptly while 10 clients trickle their headers a byte at a time', async () => {
    const server = await MetricsServer.listen({ host: '127.0.0.1', port: 0 }, new Metrics(new Source()));
    const port = server.address.port;
    const slow: net.Socket[] = [];
    const head = 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n' + 'X-Slow: yes\r\n'.repeat(50);
    let i = 0;
    const drip = setInterval(() => {
      for (const s of slow) if (!s.destroyed) s.write(head[i % head.length]!);
      i++;
    }, 100);
    try {
      for (let k = 0; k < 10; k++) {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', () => undefined);
        slow.push(s);
      }
      await sleep(300);
      for (let k = 0; k < 50; k++) {
        const t0 = Date.now();
        assert.equal(await scrape(port), 200);
        assert.ok(Date.now() - t0 < 1000, `scrape ${k} took ${Date.now() - t0} ms`);
      }
      assert.ok(slow.every((s) => !s.destroyed), 'the trickling clients were still connected during the scrapes');
    } finally {
      clearInterval(drip);
      for (const s of slow) s.destroy();
      await server.close();
    }
  });
});

describe('robust: metrics endpoint refuses all but GET /metrics', function () {
  this.timeout(30_000);
  let server: MetricsServer;
  let port: number;
  before(async () => {
    server = await MetricsServer.listen({ host: '127.0.0.1', port: 0 }, new Metrics(new Source()));
    port = server.address.port;
  });
  after(async () => {
    await server.close();
  });

  const req = (method: string, target: string, body = ''): string =>
    `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n${body}`;

  it('answers GET /metrics with the metrics (the baseline the refusals are compared with)', async () => {
    const r = await raw(port, req('GET', '/metrics'));
    assert.equal(r.status, 200, r.text);
    assert.match(r.text, /^nfqwall_rule_packets_total\{/m);
  });

  // CONNECT is Node's own business (an upgrade it hangs up on without a listener); every other method it parses.
  for (const method of http.METHODS.filter((m) => m !== 'GET' && m !== 'CONNECT')) {
    it(`${method} /metrics: 405, Allow: GET, no metrics`, async () => {
      const r = await raw(port, req(method, '/metrics', method === 'POST' || method === 'PUT' ? 'x=1' : ''));
      assert.equal(r.status, 405, r.text);
      assert.match(r.text, /^allow: GET\r$/im);
      assert.doesNotMatch(r.text, /nfqwall_/);
    });
  }

  it('CONNECT: hung up on, no metrics', async () => {
    const r = await raw(port, 'CONNECT 127.0.0.1:9469 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    assert.notEqual(r.status, 200, r.text);
    assert.doesNotMatch(r.text, /nfqwall_/);
  });

  for (const target of ['/', '/metrics/', '/metricsx', '/Metrics', '//metrics', '/%6detrics', '/metrics/../metrics', '/./metrics',
    'http://127.0.0.1/metrics', '*', '/metrics%00', '/' + 'm'.repeat(8000)]) {
    it(`GET ${target.length > 40 ? `${target.slice(0, 20)}... (${target.length} bytes)` : target}: refused, no metrics`, async () => {
      const r = await raw(port, req('GET', target));
      // 404 from nfqwall, or 400/414 from Node's parser: refused either way.
      assert.ok([400, 404, 414, 431].includes(r.status), `status ${r.status}:\n${r.text.slice(0, 300)}`);
      assert.doesNotMatch(r.text, /nfqwall_/);
    });
  }

  it('still serves GET /metrics after all that', async () => {
    assert.equal(await scrape(port), 200);
  });
});
