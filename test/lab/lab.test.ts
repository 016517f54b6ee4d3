// The lab harness itself: a three-host lab forwards across fw, and destroy() leaves no namespace behind.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { isRoot, Lab, sweepStaleNamespaces, THREE_HOST, threeHostSpec } from './lab';
import { ping, tcpConnect, udpExchange, udpSend, udpSink } from './traffic';

function namespacesNow(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n !== '');
}

describe('lab harness', function () {
  this.timeout(60_000);

  before(function () {
    if (!isRoot()) {
      process.stderr.write('lab harness: skipping: network namespaces need root\n');
      this.skip();
    }
  });

  it('builds the three-host lab, forwards v4 and v6 through fw, and deletes every namespace', async () => {
    const lab = await Lab.create(threeHostSpec());
    const names = lab.namespaces();
    try {
      assert.equal(names.length, 3);
      for (const ns of names) assert.match(ns, new RegExp(`^nfqw-${process.pid}-\\d+-(client|fw|server)$`));
      const present = namespacesNow();
      for (const ns of names) assert.ok(present.includes(ns), `${ns} exists`);

      const client = lab.host('client');
      const server = lab.host('server');
      assert.equal(await ping(client, THREE_HOST.server4, 3), 3);
      assert.equal(await ping(client, THREE_HOST.server6, 3), 3);
      assert.equal(await udpExchange(client, server, THREE_HOST.server4, 5000, 20), 20);
      assert.equal(await udpExchange(client, server, THREE_HOST.server6, 5000, 20), 20);
      assert.equal(await tcpConnect(client, server, THREE_HOST.server4, 5002), true);
      assert.equal(await tcpConnect(client, server, THREE_HOST.server6, 5002), true);

      const sink = await udpSink(server, THREE_HOST.server4, 5003);
      await udpSend(client, THREE_HOST.server4, 5003, 50);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await sink.count(), 50);
      sink.stop();

      // Without forwarding in fw the same path is cut: the helpers can report failure.
      await lab.host('fw').exec(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=0']);
      assert.equal(await ping(client, THREE_HOST.server4, 2, { waitS: 0.5 }), 0);
      assert.equal(await tcpConnect(client, server, THREE_HOST.server4, 5002, 1_000), false);
      // A spawned process that would run forever is killed by destroy().
      lab.host('server').spawn(['sleep', '600']);
    } finally {
      await lab.destroy();
    }
    const after = namespacesNow();
    for (const ns of names) assert.ok(!after.includes(ns), `${ns} deleted`);
    await lab.destroy(); // idempotent
  });

  it('deletes what it built when a spec is bad', async () => {
    const before = namespacesNow().filter((n) => n.startsWith(`nfqw-${process.pid}-`));
    await assert.rejects(
      Lab.create({ hosts: [{ name: 'a' }, { name: 'b' }], links: [{ a: 'a', b: 'nosuch', aAddr: [], bAddr: [] }] }),
      /unknown host/,
    );
    assert.deepEqual(namespacesNow().filter((n) => n.startsWith(`nfqw-${process.pid}-`)), before);
  });

  it('sweeps namespaces left by a process that is gone, and only those', async () => {
    const dead = spawnSync('true').pid;
    assert.ok(dead !== undefined && dead > 0);
    const stale = `nfqw-${dead}-1-stale`;
    const mine = `nfqw-${process.pid}-999-live`;
    execFileSync('ip', ['netns', 'add', stale]);
    execFileSync('ip', ['netns', 'add', mine]);
    try {
      const swept = sweepStaleNamespaces();
      assert.ok(swept.includes(stale), `swept ${JSON.stringify(swept)}`);
      const now = namespacesNow();
      assert.ok(!now.includes(stale), 'stale namespace deleted');
      assert.ok(now.includes(mine), 'a live process\'s namespace kept');
    } finally {
      for (const ns of [stale, mine]) spawnSync('ip', ['netns', 'del', ns]);
    }
  });
});
