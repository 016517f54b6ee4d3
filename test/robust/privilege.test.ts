// src/daemon/privilege.ts without a kernel: which capabilities start needs, when a drop is possible, and what
// Privilege.acquire asks of the addon (open, drop, re-exec with the sockets; adopt them in the new image). The lab test
// (caps.lab.test.ts) checks the same against the kernel.
import assert from 'node:assert/strict';
import type { CapabilitySets } from '../../src/native';
import { canLower, Privilege, RAW_SOCKETS_ENV, startOnlyCapabilities } from '../../src/daemon/privilege';

const sets = (s: Partial<CapabilitySets>): CapabilitySets => ({
  effective: [], permitted: [], inheritable: [], bounding: [], ambient: [], ...s,
});

class Reexec extends Error {
  constructor(readonly argv: string[], readonly env: string[], readonly fds: number[]) {
    super('reexec');
  }
}

/** An addon that records its calls; `reexec` throws Reexec where the real one would replace the process. */
function fakeAddon(current: CapabilitySets, raw = { ipv4: 21, ipv6: 22, errors: [] as string[] }) {
  const calls: string[] = [];
  const addon = {
    current,
    capabilities: () => addon.current,
    openRawSockets: () => (calls.push('open'), raw),
    dropCapabilities: (keep: string[]) => (calls.push(`drop ${keep.join(',')}`), { before: current, after: current, boundingLeft: [] }),
    adoptRawSockets: (a: number, b: number) => void calls.push(`adopt ${a} ${b}`),
    reexec: (_path: string, argv: string[], env: string[], fds: number[]): never => {
      calls.push('reexec');
      throw new Reexec(argv, env, fds);
    },
  };
  return { calls, addon: addon as unknown as NonNullable<Parameters<typeof Privilege.acquire>[1]>['addon'] };
}

describe('robust: privilege (no kernel)', () => {
  it('start needs CAP_CHOWN only for control_group, CAP_NET_BIND_SERVICE only for a metrics port below 1024', () => {
    assert.deepEqual(startOnlyCapabilities({}), []);
    assert.deepEqual(startOnlyCapabilities({ metrics: { host: '127.0.0.1', port: 9469 } }), []);
    assert.deepEqual(startOnlyCapabilities({ metrics: { host: '127.0.0.1', port: 443 }, controlGroup: 'adm' }), ['chown', 'net_bind_service']);
  });

  it('lowers when any set holds more than kept; the bounding set only with CAP_SETPCAP', () => {
    const keep = ['net_admin'];
    assert.equal(canLower(sets({ effective: ['net_admin'], permitted: ['net_admin'], bounding: ['net_admin'] }), keep), false);
    assert.equal(canLower(sets({ permitted: ['net_admin', 'net_raw'] }), keep), true);
    assert.equal(canLower(sets({ ambient: ['net_raw'] }), keep), true);
    // An unprivileged user: a full bounding set it cannot lower, and nothing else.
    assert.equal(canLower(sets({ bounding: ['net_admin', 'sys_admin'] }), keep), false);
    assert.equal(canLower(sets({ effective: ['setpcap'], permitted: ['setpcap'], bounding: ['setpcap'] }), keep), true);
  });

  it('opens the sockets, drops, and re-executes the same command line with the sockets and the marker', () => {
    const { calls, addon } = fakeAddon(sets({ effective: ['net_admin', 'net_raw'], permitted: ['net_admin', 'net_raw'] }));
    const env: NodeJS.ProcessEnv = { PATH: '/usr/bin', NOTIFY_SOCKET: '/run/systemd/notify' };
    const argv = ['/usr/bin/node', '/usr/lib/nfqwall/dist/src/cli/main.js', 'run', '--config', '/etc/nfqwall/nfqwall.conf'];
    assert.throws(() => Privilege.acquire([], { addon, env, argv }), (err: unknown) => {
      assert.ok(err instanceof Reexec);
      assert.deepEqual(err.argv, argv);
      assert.deepEqual(err.fds, [21, 22]);
      assert.ok(err.env.includes('NOTIFY_SOCKET=/run/systemd/notify'));
      assert.ok(err.env.includes(`${RAW_SOCKETS_ENV}=21,22;`), err.env.join(' '));
      return true;
    });
    assert.deepEqual(calls, ['open', 'drop net_admin', 'reexec']);
  });

  it('keeps the start-only capabilities through the re-exec, and drops them after start', () => {
    const { calls, addon } = fakeAddon(sets({ effective: ['net_admin', 'chown', 'sys_admin'], permitted: ['net_admin', 'chown', 'sys_admin'] }));
    assert.throws(() => Privilege.acquire(['chown'], { addon, env: {}, argv: ['node'] }), Reexec);
    assert.deepEqual(calls, ['open', 'drop net_admin,chown,setpcap', 'reexec']);
    (addon as unknown as { current: CapabilitySets }).current = sets({ effective: ['net_admin', 'chown', 'setpcap'], permitted: ['net_admin', 'chown', 'setpcap'] });
    const env: NodeJS.ProcessEnv = { [RAW_SOCKETS_ENV]: '21,22;' };
    const p = Privilege.acquire(['chown'], { addon, env });
    p.afterStart();
    assert.deepEqual(calls.slice(3), ['adopt 21 22', 'drop net_admin']);
  });

  it('in the re-executed image adopts the sockets, removes the marker, and never re-executes again', () => {
    const { calls, addon } = fakeAddon(sets({ effective: ['net_admin'], permitted: ['net_admin'], bounding: ['net_admin'] }));
    const env: NodeJS.ProcessEnv = { [RAW_SOCKETS_ENV]: '-1,22;IPv4 raw socket: Operation not permitted' };
    const p = Privilege.acquire([], { addon, env });
    assert.deepEqual(calls, ['adopt -1 22']);
    assert.equal(env[RAW_SOCKETS_ENV], undefined, 'children do not see the marker');
    assert.deepEqual(p.rawSockets, { ipv4: false, ipv6: true, errors: ['IPv4 raw socket: Operation not permitted'] });
    assert.equal(p.reexecuted, true);
    p.afterStart();
    assert.deepEqual(calls, ['adopt -1 22'], 'nothing start-only to drop');
    assert.throws(() => Privilege.acquire([], { addon, env: { [RAW_SOCKETS_ENV]: 'x' } }), /not two descriptors/);
  });

  it('without anything to drop it neither drops nor re-executes, and says when REJECT cannot reply', () => {
    const raw = { ipv4: -1, ipv6: -1, errors: ['IPv4 raw socket: Operation not permitted', 'IPv6 raw socket: Operation not permitted'] };
    const held = sets({ effective: ['net_admin'], permitted: ['net_admin'], bounding: ['net_admin'], ambient: ['net_admin'], inheritable: ['net_admin'] });
    const { calls, addon } = fakeAddon(held, raw);
    const p = Privilege.acquire([], { addon, env: {} });
    assert.deepEqual(calls, ['open']);
    assert.equal(p.reexecuted, false);
    const said = p.describe();
    assert.equal(said.info, 'capabilities: effective CAP_NET_ADMIN, bounding CAP_NET_ADMIN');
    assert.equal(said.warnings.length, 1);
    assert.match(said.warnings[0]!, /REJECT replies cannot be sent \(IPv4 raw socket: Operation not permitted; IPv6/);
  });

  it('refuses the marker in a process that still holds more than it keeps (not re-executed by nfqwall)', () => {
    const { calls, addon } = fakeAddon(sets({ effective: ['net_admin', 'sys_admin'], permitted: ['net_admin', 'sys_admin'] }));
    assert.throws(() => Privilege.acquire([], { addon, env: { [RAW_SOCKETS_ENV]: '21,22;' } }), /was not re-executed by nfqwall/);
    assert.deepEqual(calls, [], 'nothing adopted');
  });

  it('a failing drop stops the start, naming the step', () => {
    const { addon } = fakeAddon(sets({ effective: ['net_admin', 'net_raw'], permitted: ['net_admin', 'net_raw'] }));
    (addon as unknown as { dropCapabilities: () => never }).dropCapabilities = () => {
      throw new Error('dropping capabilities: capset: Operation not permitted');
    };
    assert.throws(() => Privilege.acquire([], { addon, env: {}, argv: ['node'] }), /capset: Operation not permitted/);
  });
});
