// The unit file and its installer, checked without a service manager: systemd-analyze verify and security (offline),
// and install-service into a scratch prefix.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { applyPlan, planInstall, renderUnit } from '../../src/cli/install-service';
import { loadConfigFile } from '../../src/config/config';
import { loadRuleFile } from '../../src/rules/load';
import { packageRoot } from '../paths';

const UNIT = path.join(packageRoot(), 'systemd', 'nfqwall.service');
/**
 * The exposure `systemd-analyze security --offline=true` may not exceed, in its --threshold unit (tenths: 25 is an
 * overall exposure of 2.5). docs/systemd.md; the unit scored 2.0 when this was chosen.
 */
const SECURITY_THRESHOLD = 25;

function analyze(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('systemd-analyze', args, { encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw new Error(`systemd-analyze: ${r.error.message} (install the systemd package; scripts/bootstrap.sh)`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The values of `Key=` lines in the [Service] section, in order. */
function settings(unit: string, key: string): string[] {
  return unit
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

describe('systemd: the unit file', () => {
  const text = fs.readFileSync(UNIT, 'utf8');

  it('passes systemd-analyze verify with nothing printed', function () {
    if (!fs.existsSync(settings(text, 'ExecStart')[0]!.split(' ')[0]!)) {
      // verify checks that ExecStart's binary exists; the rendered unit below is verified in any case.
      throw new Error('/usr/bin/node is missing: the shipped unit names it (install-service renders the real path)');
    }
    const r = analyze(['verify', UNIT]);
    assert.equal(r.stderr, '', r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.status, 0);
  });

  it(`passes systemd-analyze security --offline=true --threshold=${SECURITY_THRESHOLD}`, () => {
    const r = analyze(['security', '--offline=true', `--threshold=${SECURITY_THRESHOLD}`, '--no-pager', UNIT]);
    const level = /Overall exposure level for nfqwall\.service: ([\d.]+)/.exec(r.stdout);
    assert.ok(level, r.stdout + r.stderr);
    assert.equal(r.status, 0, `exposure ${level[1]} is above ${SECURITY_THRESHOLD}:\n${r.stdout}`);
    assert.ok(Number(level[1]) * 10 <= SECURITY_THRESHOLD);
  });

  it('is a notify service with a watchdog, a waiting reload and the capability set the daemon needs, nothing more', () => {
    assert.deepEqual(settings(text, 'Type'), ['notify']);
    assert.deepEqual(settings(text, 'NotifyAccess'), ['main']);
    assert.equal(settings(text, 'WatchdogSec').length, 1);
    assert.deepEqual(settings(text, 'Restart'), ['on-failure']);
    assert.match(settings(text, 'ExecReload')[0]!, / reload --control \/run\/nfqwall\/control\.sock$/);
    assert.deepEqual(settings(text, 'User'), ['nfqwall']);
    // NET_RAW and SETPCAP for the start only: the daemon drops them before it binds the queue (src/daemon/privilege.ts).
    assert.deepEqual(settings(text, 'CapabilityBoundingSet'), ['CAP_NET_ADMIN CAP_NET_RAW CAP_SETPCAP']);
    assert.deepEqual(settings(text, 'AmbientCapabilities'), ['CAP_NET_ADMIN CAP_NET_RAW CAP_SETPCAP']);
    // capset is in @privileged: allowed back after it, or the drop fails (and with it the start).
    assert.deepEqual(settings(text, 'SystemCallFilter'), ['@system-service', '~@privileged @resources', 'capset']);
    assert.deepEqual(settings(text, 'NoNewPrivileges'), ['yes']);
    // V8 cannot start under it (nodejs/node#55509).
    assert.deepEqual(settings(text, 'MemoryDenyWriteExecute'), []);
    // The daemon must see the machine's network: no PrivateNetwork, and /proc/net stays visible.
    assert.deepEqual(settings(text, 'PrivateNetwork'), []);
    assert.deepEqual(settings(text, 'ProcSubset'), []);
  });
});

describe('systemd: install-service', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-install-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('renders the unit with the real node, code and configuration paths', () => {
    const unit = renderUnit(fs.readFileSync(UNIT, 'utf8'), { node: '/opt/node/bin/node', codeDir: '/srv/nfqwall', configDir: '/x/etc/nfqwall' });
    assert.deepEqual(settings(unit, 'ExecStart'), ['/opt/node/bin/node /srv/nfqwall/dist/src/cli/main.js run --config /x/etc/nfqwall/nfqwall.conf']);
    assert.match(settings(unit, 'ExecReload')[0]!, /^\/opt\/node\/bin\/node \/srv\/nfqwall\/dist\/src\/cli\/main\.js reload /);
    assert.doesNotMatch(unit, /\/usr\/lib\/nfqwall\/dist|\/usr\/bin\/node /);
    assert.throws(() => renderUnit('', { node: '/a b/node', codeDir: '/c', configDir: '/d' }), /without spaces/);
    assert.throws(() => renderUnit('', { node: 'node', codeDir: '/c', configDir: '/d' }), /absolute/);
  });

  it('--dry-run writes nothing and says what it would do', () => {
    const plan = planInstall({ prefix: dir });
    const lines = applyPlan(plan, true);
    assert.deepEqual(fs.readdirSync(dir), []);
    assert.ok(lines.some((l) => l.startsWith(`would write ${dir}/etc/systemd/system/nfqwall.service`)), lines.join('\n'));
    // A prefix is a staging area: no user is created and systemd is not touched.
    assert.ok(!plan.some((a) => a.kind === 'command'), JSON.stringify(plan));
    const real = planInstall({ prefix: '/' });
    assert.deepEqual(
      real.filter((a) => a.kind === 'command').map((a) => (a.kind === 'command' ? a.argv[0] : '')),
      ['systemd-sysusers', 'systemctl'],
    );
    assert.ok(!planInstall({ prefix: '/', noUser: true, noReload: true }).some((a) => a.kind === 'command'));
  });

  it('installs a unit that verifies, a configuration and rules that load, and keeps them on a second run', () => {
    const unitDir = path.join(dir, 'units');
    applyPlan(planInstall({ prefix: dir, unitDir }), false);
    const unitFile = path.join(unitDir, 'nfqwall.service');
    const unit = fs.readFileSync(unitFile, 'utf8');
    const main = path.join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
    assert.deepEqual(settings(unit, 'ExecStart'), [`${process.execPath} ${main} run --config ${dir}/etc/nfqwall/nfqwall.conf`]);
    const r = analyze(['verify', unitFile]);
    assert.equal(r.stderr, '', r.stderr);
    assert.equal(r.status, 0);

    const conf = path.join(dir, 'etc', 'nfqwall', 'nfqwall.conf');
    const cfg = loadConfigFile(conf).config;
    assert.equal(cfg.rules, path.join(dir, 'etc', 'nfqwall', 'rules.v4'));
    assert.equal(cfg.control, '/run/nfqwall/control.sock');
    const rs = loadRuleFile(cfg.rules!, 4);
    assert.deepEqual([...rs.tables.get('filter')!.chains.values()].map((c) => c.policy), ['ACCEPT', 'ACCEPT', 'ACCEPT']);
    assert.match(fs.readFileSync(path.join(dir, 'usr', 'lib', 'sysusers.d', 'nfqwall.conf'), 'utf8'), /^u nfqwall - /m);
    assert.equal(fs.statSync(unitFile).mode & 0o777, 0o644);

    fs.writeFileSync(conf, 'rules = mine.v4\n');
    const again = applyPlan(planInstall({ prefix: dir, unitDir }), false);
    assert.equal(fs.readFileSync(conf, 'utf8'), 'rules = mine.v4\n');
    assert.ok(again.some((l) => l.startsWith(`keep ${conf}`)), again.join('\n'));
  });
});
