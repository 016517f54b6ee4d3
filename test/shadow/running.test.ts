// `nfqwall shadow --against-running`: the ruleset to compare with is the one a running daemon enforces, fetched over
// its control socket. The lab case runs a real daemon in a namespace and replays a crafted capture through the CLI.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { cliPath, Daemon, scratchDir } from '../lab/daemon';
import { Lab, THREE_HOST, isRoot, threeHostSpec } from '../lab/lab';
import { packageRoot } from '../paths';
import { LINKTYPE, writePcap } from '../../src/shadow/pcap';
import type { ShadowReport } from '../../src/shadow/report';
import { runShadow } from '../../src/shadow/run';
import { PEER_MAC, packet, sll } from './helpers';

/** The CLI as this test runs: the TypeScript sources under tsx, the compiled one from dist/test. */
function cli(): string[] {
  if (__filename.endsWith('.ts')) return [process.execPath, '--import', 'tsx', path.join(packageRoot(), 'src', 'cli', 'main.ts')];
  return [process.execPath, cliPath()];
}

const HEAD = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n';

// What the daemon enforces: UDP 5001 dropped, SSH from the client side refused, the rest forwarded.
const RUNNING =
  HEAD +
  '-A FORWARD -p udp -m udp --dport 5001 -j DROP\n' +
  '-A FORWARD -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset\n' +
  '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n' +
  'COMMIT\n';

// The candidate: 5001 opened, 5002 closed, SSH still refused; replies still pass.
const CANDIDATE =
  HEAD +
  '-A FORWARD -p udp -m udp --dport 5002 -j DROP\n' +
  '-A FORWARD -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset\n' +
  '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n' +
  'COMMIT\n';

describe('shadow --against-running', function () {
  this.timeout(120_000);

  it('refuses --against with --against-running, and says when no daemon answers', async () => {
    const dir = scratchDir();
    try {
      const rules = dir.write('c.rules', CANDIDATE);
      const io = { out: () => undefined, err: () => undefined };
      await assert.rejects(runShadow({ rules, read: rules, against: rules, againstRunning: true }, io), /not both/);
      await assert.rejects(runShadow({ rules, read: rules, control: '/x' }, io), /--control is only used with --against-running/);
      const missing = path.join(dir.dir, 'no-daemon.sock');
      await assert.rejects(runShadow({ rules, read: rules, againstRunning: true, control: missing }, io), new RegExp(`cannot reach nfqwall at ${missing}`));
    } finally {
      dir.cleanup();
    }
  });

  describe('with a daemon in a lab namespace', () => {
    let lab: Lab | undefined;
    let daemon: Daemon | undefined;
    const scratch = scratchDir();

    before(function () {
      if (!isRoot()) {
        process.stderr.write('shadow --against-running: skipping the lab case: network namespaces need root\n');
        this.skip();
      }
    });

    after(async function () {
      await daemon?.stop();
      await lab?.destroy();
      scratch.cleanup();
    });

    it('compares with the daemon\'s live ruleset and lists only the flows whose fate changes', async () => {
      lab = await Lab.create(threeHostSpec());
      const fw = lab.host('fw');
      const clientIf = fw.ifname('client');
      const control = path.join(scratch.dir, 'control.sock');
      daemon = await Daemon.start(fw, control, { rules: scratch.write('running.rules', RUNNING) });
      const { client4: c, server4: s } = THREE_HOST;
      const frames = [
        ...[1, 2, 3].map(() => packet(c, s, { proto: 17, sport: 40000, dport: 5001 })),
        ...[1, 2].map(() => packet(c, s, { proto: 17, sport: 40001, dport: 5002 })),
        packet(c, s, { proto: 17, sport: 40002, dport: 5003 }),
        packet(c, s, { proto: 6, sport: 40003, dport: 22, tcpFlags: 0x02 }),
      ];
      // Received by fw on its client-side interface (Linux cooked capture, packet type 0 = to this host).
      const file = path.join(scratch.dir, 'capture.pcap');
      fs.writeFileSync(file, writePcap(LINKTYPE.LINUX_SLL, frames.map((l3, i) => ({ time: 10 + i / 10, data: sll(0, PEER_MAC, l3) }))));
      const cand = scratch.write('candidate.rules', CANDIDATE);
      const r = await fw.exec([...cli(), 'shadow', '--rules', cand, '--against-running', '--control', control, '--read', file, '--iface', clientIf, '--json'], {
        timeoutMs: 60_000,
      });
      const report = JSON.parse(r.stdout) as ShadowReport;
      assert.equal(report.packets.evaluated, 7, JSON.stringify(report.packets));
      assert.match(report.capture.against ?? '', new RegExp(`running daemon.*${control.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      const d = report.differing;
      assert.ok(d, 'a diff section');
      assert.equal(d.packets, 5);
      assert.deepEqual(
        d.flows.map((f) => [f.dport, f.packets, f.verdict, f.rule?.text ?? null, f.against?.verdict, f.against?.rule?.text ?? null]),
        [
          [5001, 3, 'accept', ':FORWARD ACCEPT', 'drop', '-A FORWARD -p udp -m udp --dport 5001 -j DROP'],
          [5002, 2, 'drop', '-A FORWARD -p udp -m udp --dport 5002 -j DROP', 'accept', ':FORWARD ACCEPT'],
        ],
      );
      // The same run as text: the diff section names both rules.
      const t = await fw.exec([...cli(), 'shadow', '--rules', cand, '--against-running', '--control', control, '--read', file, '--iface', clientIf], {
        timeoutMs: 60_000,
      });
      assert.match(t.stdout, /## Fate differs \(--against\): 5 packets in 2 flows/);
      assert.match(t.stdout, /against: {3}DROP at FORWARD by filter\/FORWARD#1: -A FORWARD -p udp -m udp --dport 5001 -j DROP/);
      assert.match(t.stdout, /# against: the running daemon's rules/);
      assert.ok(daemon.running, 'the daemon is still running');
    });
  });
});
