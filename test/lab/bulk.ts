// TCP bulk transfers through the three-host lab, which the kernel moves in segmentation-offloaded packets of up to
// 64 KiB (veth passes them whole): offloads checked on, and a transfer whose bytes are hashed at both ends, to compare
// what fw counted (counters.ts) with what the server did.
import { sleep } from './daemon';
import type { Host, Lab } from './lab';

/** Every veth end a transfer from client to server crosses. */
const VETHS: [string, string][] = [
  ['client', 'to-fw'],
  ['fw', 'to-client'],
  ['fw', 'to-server'],
  ['server', 'to-fw'],
];

/**
 * Turns TSO and GSO on on every veth end (they are by default), and says why not when one cannot be on. Without
 * ethtool nothing is checked here (a test's own count of packets over the MTU still shows them), and stderr says so.
 */
export async function offloadsOn(lab: Lab, who: string): Promise<string | undefined> {
  const probe = await lab.host('fw').exec(['ethtool', '--version'], { check: false });
  if (probe.code !== 0) {
    process.stderr.write(`${who}: ethtool is not installed: TSO/GSO not checked (veth default: on)\n`);
    return undefined;
  }
  for (const [hostName, dev] of VETHS) {
    const h = lab.host(hostName);
    const features = async (): Promise<string> => (await h.exec(['ethtool', '-k', dev])).stdout;
    const on = (text: string): boolean =>
      /^tcp-segmentation-offload: on/m.test(text) && /^generic-segmentation-offload: on/m.test(text);
    let text = await features();
    if (!on(text)) {
      await h.exec(['ethtool', '-K', dev, 'tso', 'on', 'gso', 'on'], { check: false });
      text = await features();
    }
    if (!on(text)) {
      const lines = text.split('\n').filter((l) => /^(tcp-segmentation-offload|generic-segmentation-offload|\s+tx-tcp-segmentation):/.test(l));
      return `TSO/GSO cannot be turned on on ${dev} in ${hostName}: ${lines.map((l) => l.trim()).join('; ')}`;
    }
  }
  return undefined;
}

// argv: port. Hashes each connection's bytes; prints `got N SHA256` when it ends.
const SINK = `
const crypto = require('node:crypto');
require('node:net').createServer((s) => {
  const h = crypto.createHash('sha256'); let n = 0;
  s.on('data', (d) => { n += d.length; h.update(d); });
  s.on('end', () => { process.stdout.write('got ' + n + ' ' + h.digest('hex') + '\\n'); s.end(); });
  s.on('error', (e) => process.stdout.write('error ' + e.code + '\\n'));
}).listen(Number(process.argv[1]), () => process.stdout.write('ready\\n'));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

// argv: addr port bytes timeoutMs. Sends random bytes in 256 KiB writes and closes; prints `sent N SHA256` once the
// server has closed too, or `failed <why>`.
const SEND = `
const crypto = require('node:crypto');
const [addr, port, bytes, timeoutMs] = process.argv.slice(1);
const data = crypto.randomBytes(Number(bytes));
const sha = crypto.createHash('sha256').update(data).digest('hex');
const s = require('node:net').connect(Number(port), addr);
const t = setTimeout(() => { process.stdout.write('failed timeout\\n'); process.exit(0); }, Number(timeoutMs));
s.on('connect', () => { for (let o = 0; o < data.length; o += 262144) s.write(data.subarray(o, o + 262144)); s.end(); });
s.on('error', (e) => { clearTimeout(t); process.stdout.write('failed ' + e.code + '\\n'); process.exit(0); });
s.on('close', () => { clearTimeout(t); process.stdout.write('sent ' + data.length + ' ' + sha + '\\n'); process.exit(0); });
s.resume();
`;

export interface Transfer {
  /** `sent N SHA256` (or `failed <why>`) and `got N SHA256`: equal words after the first when every byte arrived. */
  sent: string;
  got: string;
}

/** `bytes` from client to a sink listening on `listenPort` on server, through `addr:port` (a service address, say). */
export async function tcpTransfer(
  client: Host,
  server: Host,
  to: { addr: string; port: number; listenPort: number; bytes: number; timeoutMs?: number },
): Promise<Transfer> {
  const timeoutMs = to.timeoutMs ?? 30_000;
  const sink = server.spawn([process.execPath, '-e', SINK, String(to.listenPort)]);
  let out = '';
  sink.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  try {
    for (let i = 0; i < 100 && !/^ready$/m.test(out); i++) await sleep(100);
    if (!/^ready$/m.test(out)) throw new Error(`the TCP sink did not start: ${out}`);
    const argv = [process.execPath, '-e', SEND, to.addr, String(to.port), String(to.bytes), String(timeoutMs)];
    const r = await client.exec(argv, { timeoutMs: timeoutMs + 15_000 });
    for (let i = 0; i < 50 && !/^got /m.test(out); i++) await sleep(100);
    return { sent: r.stdout.trim(), got: /^got .*$/m.exec(out)?.[0] ?? `got nothing (${out.trim()})` };
  } finally {
    sink.kill('SIGKILL');
  }
}
