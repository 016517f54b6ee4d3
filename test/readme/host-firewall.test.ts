// examples/host-firewall.rules does what its comments and the README say, with nfqwall's connection state: SSH
// sessions of any length, HTTP, ping and replies to the host's own connections get in (the replies only through
// `--ctstate ESTABLISHED`: the file has no stateless rule for them); other ports are refused.
import assert from 'node:assert/strict';
import path from 'node:path';
import { Daemon, scratchDir } from '../lab/daemon';
import { THREE_HOST as A, threeHostSpec, useLab } from '../lab/lab';
import { ping, tcpConnect } from '../lab/traffic';
import { packageRoot } from '../paths';

// argv: addr port rounds. One connection, `rounds` messages each awaited back; prints `ok N` or `fail <why> N`.
const SESSION = `
const net = require('node:net');
const [addr, port, rounds] = process.argv.slice(1);
let n = 0;
const c = net.connect({ host: addr, port: Number(port) });
const t = setTimeout(() => { process.stdout.write('fail timeout ' + n + '\\n'); process.exit(0); }, 8000);
c.on('connect', () => c.write('m' + n));
c.on('data', () => { n++; if (n === Number(rounds)) { clearTimeout(t); process.stdout.write('ok ' + n + '\\n'); process.exit(0); } c.write('m' + n); });
c.on('error', (e) => { process.stdout.write('fail ' + e.code + ' ' + n + '\\n'); process.exit(0); });
`;
const ECHO = `
const net = require('node:net');
const [addr, port] = process.argv.slice(1);
net.createServer((c) => { c.on('error', () => {}); c.pipe(c); }).listen(Number(port), addr, () => process.stdout.write('ready\\n'));
process.stdin.resume();
`;

describe('examples/host-firewall.rules in a lab', function () {
  this.timeout(60_000);
  const env = useLab(threeHostSpec);
  let daemon: Daemon | undefined;
  let scratch: ReturnType<typeof scratchDir> | undefined;

  before(async function () {
    scratch = scratchDir();
    daemon = await Daemon.start(env.lab.host('fw'), path.join(scratch.dir, 'control.sock'), {
      rules: path.join(packageRoot(), 'examples', 'host-firewall.rules'),
    });
  });
  after(async function () {
    if (daemon?.running === true) await daemon.stop('SIGTERM');
    scratch?.cleanup();
  });

  it('lets a long SSH session in (only its SYN meets the rate limit)', async () => {
    const fw = env.lab.host('fw');
    const echo = fw.spawn([process.execPath, '-e', ECHO, A.fwClient4, '22']);
    try {
      await new Promise<void>((resolve, reject) => {
        echo.stdout?.once('data', () => resolve());
        echo.once('exit', (c) => reject(new Error(`echo exited ${c}`)));
      });
      const r = await env.lab.host('client').exec([process.execPath, '-e', SESSION, A.fwClient4, '22', '40'], { timeoutMs: 20_000 });
      assert.equal(r.stdout.trim(), 'ok 40', r.stderr);
    } finally {
      echo.kill('SIGKILL');
    }
  });

  it('lets ping and HTTP in, and refuses other ports with a reset', async () => {
    const client = env.lab.host('client');
    const fw = env.lab.host('fw');
    assert.equal(await ping(client, A.fwClient4, 2), 2, 'ping');
    assert.equal(await tcpConnect(client, fw, A.fwClient4, 80), true, 'http');
    const t0 = Date.now();
    assert.equal(await tcpConnect(client, fw, A.fwClient4, 8080, 3_000), false, 'port 8080');
    assert.ok(Date.now() - t0 < 2_500, 'port 8080 should be refused at once, not time out');
  });

  it("lets the replies to the host's own connections in", async () => {
    assert.equal(await tcpConnect(env.lab.host('fw'), env.lab.host('server'), A.server4, 5002), true, 'fw -> server tcp');
    assert.equal(await ping(env.lab.host('fw'), A.server4, 2), 2, 'fw -> server ping');
  });

  it('logged what it refused', () => {
    assert.match(daemon?.output ?? '', /\[host BLOCK\] IN=\S+ .*DPT=8080 /);
  });
});
