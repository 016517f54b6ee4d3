// The soak's short mode (bench/soak.ts; `npm run soak` runs it for 10 minutes): 30 s of UDP, TCP and ICMP through
// DNAT and MASQUERADE with a reload of a changed ruleset and a metrics scrape every second. No lost verdict, no
// failed reload, no carried counter going back, resident memory and descriptors flat after warm-up (root).
import assert from 'node:assert/strict';
import { isRoot } from '../lab/lab';
import { soak } from '../../bench/soak';

describe('robust: soak, short mode (lab)', function () {
  it('30 s of mixed traffic through NAT with reloads and scrapes every second', async function () {
    this.timeout(120_000);
    if (!isRoot()) {
      process.stderr.write('soak: skipping: network-namespace tests need root\n');
      this.skip();
    }
    const out: string[] = [];
    const r = await soak({ seconds: 30, interval: 10, rssGrowthMiB: 32, seed: 9, log: (l) => out.push(l) });
    const report = out.join('\n');
    assert.deepEqual(r.failures, [], report);
    // The run did what it says: it reloaded and scraped about once a second and carried traffic of each kind.
    assert.ok((r.summary['reloads'] ?? 0) >= 20, report);
    assert.ok((r.summary['scrapes'] ?? 0) >= 20, report);
    for (const k of ['udpReplies', 'tcpOk', 'pingReceived', 'queued']) assert.ok((r.summary[k] ?? 0) > 0, `${k}:\n${report}`);
    assert.equal(r.summary['lostVerdicts'], 0, report);
  });
});
