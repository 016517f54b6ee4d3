// Reload under traffic (issue #6): nfqwall holding a kube-proxy-style ruleset of N services replaces it with a
// changed one while a paced UDP stream crosses fw, against `iptables-restore` of the same file into a namespace in
// the same run. Reports the time from trigger to swap (the control socket's `reload` answer), datagrams lost, and
// the daemon's resident size before and after. Run (root): `npx tsx bench/reload.ts [services...]`.
import { performance } from 'node:perf_hooks';
import { controlRequest } from '../src/daemon/control';
import { Daemon, scratchDir, sleep } from '../test/lab/daemon';
import { isRoot, Lab, THREE_HOST, threeHostSpec, type Host } from '../test/lab/lab';
import { udpSink } from '../test/lab/traffic';
import { kubeProxyRules } from './parse';

const PORT = 9100;
/** Paced, not a flood: every datagram a lossless reload passes must arrive, so the rate stays under capacity. */
const RATE_PPS = 2_000;

// argv: addr port rate seconds. Sends `rate` datagrams a second for `seconds`, then prints how many it sent.
const PACED_SENDER = `
const dgram = require('node:dgram');
const [addr, port, rate, seconds] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const s = dgram.createSocket('udp4');
const t0 = Date.now();
let sent = 0;
s.connect(port, addr, () => {
  const tick = () => {
    const due = Math.min(rate * seconds, Math.floor(((Date.now() - t0) / 1000) * rate));
    while (sent < due) { s.send('nfqw-reload'); sent++; }
    if (Date.now() - t0 >= seconds * 1000) { setTimeout(() => { process.stdout.write('sent ' + sent + '\\n'); process.exit(0); }, 200); return; }
    setTimeout(tick, 2);
  };
  tick();
});
`;

async function rssKiB(host: Host, pid: number): Promise<number> {
  const status = (await host.exec(['cat', `/proc/${pid}/status`])).stdout;
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (m === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

async function kernelRestoreMs(fw: Host, text: string): Promise<number> {
  const t0 = performance.now();
  await fw.exec(['iptables-restore'], { input: text, timeoutMs: 600_000 });
  const ms = performance.now() - t0;
  await fw.exec(['iptables', '-t', 'nat', '-F']);
  await fw.exec(['iptables', '-t', 'nat', '-X']);
  return ms;
}

interface ReloadResult {
  services: number;
  rules: number;
  reloadMs: number;
  sent: number;
  received: number;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  kernelMs: number;
}

async function measure(services: number): Promise<ReloadResult> {
  const before = kubeProxyRules(services, 3);
  // The change a scale-up makes: every service's endpoint chain set rewritten (a fourth endpoint would change them
  // all the same way); here a different comment on each service rule, so every KUBE-SERVICES rule is new.
  const after = before.replace(/cluster IP"/g, 'cluster IP (v2)"');
  const rules = before.split('\n').filter((l) => l.startsWith('-A ')).length;
  const lab = await Lab.create(threeHostSpec());
  const scratch = scratchDir();
  let daemon: Daemon | undefined;
  try {
    const fw = lab.host('fw');
    const kernelMs = await kernelRestoreMs(fw, before);
    const file = scratch.write('rules', before);
    daemon = await Daemon.start(fw, `${scratch.dir}/control.sock`, { rules: file }, 120_000);
    const pid = daemon.child.pid;
    if (pid === undefined) throw new Error('nfqwall has no pid');
    const sink = await udpSink(lab.host('server'), THREE_HOST.server4, PORT);
    try {
      const seconds = 4 + Math.ceil(services / 5_000);
      const sender = lab.host('client').exec([process.execPath, '-e', PACED_SENDER, THREE_HOST.server4, String(PORT), String(RATE_PPS), String(seconds)], {
        timeoutMs: seconds * 1000 + 30_000,
      });
      await sleep(1_000);
      const rssBefore = await rssKiB(fw, pid);
      scratch.write('rules', after);
      const t0 = performance.now();
      const res = await controlRequest(daemon.control, { cmd: 'reload' }, 600_000);
      const reloadMs = performance.now() - t0;
      if (!res.ok) throw new Error(`reload failed: ${res.error}`);
      const rssAfter = await rssKiB(fw, pid);
      const out = (await sender).stdout;
      const m = /^sent (\d+)$/m.exec(out);
      if (m === null) throw new Error(`paced sender printed no result: ${out}`);
      await sleep(500);
      const received = await sink.count();
      return {
        services,
        rules,
        reloadMs,
        sent: Number(m[1]),
        received,
        rssBeforeMiB: rssBefore / 1024,
        rssAfterMiB: rssAfter / 1024,
        kernelMs,
      };
    } finally {
      sink.stop();
    }
  } finally {
    if (daemon) await daemon.stop();
    await lab.destroy();
    scratch.cleanup();
  }
}

async function main(): Promise<void> {
  if (!isRoot()) throw new Error('the reload benchmark builds network namespaces: run it as root');
  const sizes = process.argv.slice(2).map(Number);
  const list = sizes.length > 0 ? sizes : [10_000];
  for (const n of list) if (!Number.isInteger(n) || n < 1 || n > 200_000) throw new Error(`services: expected 1..200000, got ${n}`);
  process.stdout.write(`reload under a paced UDP stream of ${RATE_PPS} datagrams/s through fw; kube-proxy style, 3 endpoints per service\n`);
  process.stdout.write('services    rules   nfqwall reload   iptables-restore   ratio   sent   lost   RSS before -> after\n');
  for (const n of list) {
    const r = await measure(n);
    process.stdout.write(
      `${String(r.services).padStart(8)} ${String(r.rules).padStart(8)} ${r.reloadMs.toFixed(0).padStart(13)} ms ` +
        `${r.kernelMs.toFixed(0).padStart(15)} ms ${(r.kernelMs / r.reloadMs).toFixed(1).padStart(6)}x ` +
        `${String(r.sent).padStart(6)} ${String(r.sent - r.received).padStart(6)}   ` +
        `${r.rssBeforeMiB.toFixed(0)} MiB -> ${r.rssAfterMiB.toFixed(0)} MiB\n`,
    );
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/reload: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
