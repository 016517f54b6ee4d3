// What test/metrics/metrics.test.ts does not cover: clients trickling their request headers (slowloris) must not
// keep scrapes from being answered. 404, 405 and scrape floods are tested there.
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
