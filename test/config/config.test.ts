import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  applyOverrides,
  ConfigErrors,
  defaultConfig,
  loadConfigFile,
  lateQueueOf,
  parseConfig,
  parseListen,
  parseSkipMark,
  resolveConfig,
} from '../../src/config/config';
import { packageRoot } from '../paths';

function errorsOf(text: string, file = '/etc/nfqwall/nfqwall.conf'): string[] {
  try {
    parseConfig(text, file);
  } catch (err) {
    assert.ok(err instanceof ConfigErrors, String(err));
    return err.errors.map((e) => e.message);
  }
  assert.fail('expected ConfigErrors');
}

describe('config: parser', () => {
  it('reads every key, resolving relative paths against the file directory', () => {
    const { config: c, given } = parseConfig(
      [
        '# a comment',
        '',
        'rules = rules.v4',
        'rules6 = /abs/rules.v6',
        'ipset = a.ipset',
        'ipset = sub/b.ipset',
        'queue = 7',
        'queues = 1',
        'queue_maxlen = 20000',
        'fail_open = yes',
        'hooks = forward, input',
        'conntrack_max = 65536',
        'metrics = [::1]:9100',
        'log_level = debug',
        'log_destination = stderr',
        'log_rate = 10',
        'log_burst = 20',
        'control = run/ctl.sock',
        'control_mode = 0660',
        'control_group = wheel',
        '  # indented comment',
      ].join('\n'),
      '/etc/nfqwall/nfqwall.conf',
    );
    assert.equal(c.rules, '/etc/nfqwall/rules.v4');
    assert.equal(c.rules6, '/abs/rules.v6');
    assert.deepEqual(c.ipsets, ['/etc/nfqwall/a.ipset', '/etc/nfqwall/sub/b.ipset']);
    assert.equal(c.queue, 7);
    assert.equal(c.failOpen, true);
    assert.deepEqual(c.hooks, ['INPUT', 'FORWARD']);
    assert.equal(c.conntrackMax, 65536);
    assert.equal(c.queueMaxlen, 20000);
    assert.deepEqual(c.metrics, { host: '::1', port: 9100 });
    assert.equal(c.logLevel, 'debug');
    assert.equal(c.logDestination, 'stderr');
    assert.equal(c.logRate, 10);
    assert.equal(c.logBurst, 20);
    assert.equal(c.control, '/etc/nfqwall/run/ctl.sock');
    assert.equal(c.controlMode, 0o660);
    assert.equal(c.controlGroup, 'wheel');
    assert.ok(given.has('ipset') && given.has('control_group') && !given.has('nothing'));
  });

  it('has documented defaults', () => {
    const c = parseConfig('rules = r\n', '/x/c.conf').config;
    assert.equal(c.queue, 0);
    assert.equal(c.queues, 1);
    assert.equal(c.failOpen, false);
    assert.deepEqual(c.hooks, ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);
    assert.deepEqual(c.metrics, { host: '127.0.0.1', port: 9469 });
    assert.equal(c.logLevel, 'info');
    assert.equal(c.control, '/run/nfqwall/control.sock');
    assert.equal(c.controlMode, 0o600);
    assert.equal(c.rules6, undefined);
  });

  it('control_group alone widens the default mode to 0660; metrics off; hooks none', () => {
    const c = parseConfig('control_group = 123\nmetrics = off\nhooks = none\n', '/x/c.conf').config;
    assert.equal(c.controlMode, 0o660);
    assert.equal(c.metrics, undefined);
    assert.deepEqual(c.hooks, []);
  });

  it('names file:line:column, the key and what is wrong, for every error at once', () => {
    const errs = errorsOf(
      ['queue = 70000', 'bogus = 1', 'fail_open = maybe', 'rules = a', 'rules = b', 'no equals here', 'metrics = localhost', 'control_mode = 0777', 'log_level ='].join('\n'),
    );
    assert.deepEqual(errs, [
      '/etc/nfqwall/nfqwall.conf:1:9: queue: "70000" is not a queue number (0..65535)',
      errs[1],
      '/etc/nfqwall/nfqwall.conf:3:13: fail_open: "maybe" is not a boolean (yes/no, true/false, on/off, 1/0)',
      '/etc/nfqwall/nfqwall.conf:5:1: rules: given twice (first at line 4)',
      '/etc/nfqwall/nfqwall.conf:6:1: expected "key = value", found "no equals here"',
      '/etc/nfqwall/nfqwall.conf:7:11: metrics: "localhost" is not ADDR:PORT (e.g. 127.0.0.1:9469, [::1]:9469)',
      '/etc/nfqwall/nfqwall.conf:8:16: control_mode: "0777" sets execute bits, which mean nothing on a socket',
      '/etc/nfqwall/nfqwall.conf:9:11: log_level: missing value after "="',
    ]);
    assert.match(errs[1]!, /^\/etc\/nfqwall\/nfqwall\.conf:2:1: unknown key "bogus" \(known: rules, /);
  });

  it('refuses bad hooks, queue ranges, modes and counts', () => {
    assert.match(errorsOf('hooks = INPUT,NOWHERE')[0]!, /:1:9: hooks: "NOWHERE" is not a hook/);
    assert.match(errorsOf('queue = 65535\nqueues = 2')[0]!, /:2:1: queues: queue 65535 \+ 2 queues goes past 65535/);
    assert.match(errorsOf('control_mode = 0400')[0]!, /owner read and write/);
    assert.match(errorsOf('queues = 0')[0]!, /not a queue count/);
    assert.match(errorsOf('queue_maxlen = 0')[0]!, /:1:\d+: queue_maxlen: "0" is not a queue length/);
    assert.match(errorsOf('log_destination = syslog')[0]!, /not a log destination/);
  });

  it('spreads several queues by CPU only when asked, and refuses that for one queue as iptables does', () => {
    assert.equal(parseConfig('queues = 2\n', '/etc/nfqwall/nfqwall.conf').config.queueCpuFanout, false);
    assert.equal(parseConfig('queues = 2\nqueue_cpu_fanout = yes\n', '/etc/nfqwall/nfqwall.conf').config.queueCpuFanout, true);
    assert.deepEqual(errorsOf('queue = 4\nqueue_cpu_fanout = on'), [
      '/etc/nfqwall/nfqwall.conf:2:1: queue_cpu_fanout: needs queues of 2 or more: one queue has nothing to pick from',
    ]);
    assert.equal(applyOverrides(defaultConfig(), { queues: '4', queueCpuFanout: true }).queueCpuFanout, true);
    // The flag or --queues 1 over a file: the combination is checked once both are applied.
    const fanned = parseConfig('queues = 2\nqueue_cpu_fanout = yes\n', '/etc/nfqwall/nfqwall.conf').config;
    assert.throws(() => applyOverrides(fanned, { queues: '1' }), /^Error: queue_cpu_fanout \(--queue-cpu-fanout\) needs queues of 2 or more/);
    assert.throws(() => applyOverrides(defaultConfig(), { queueCpuFanout: true }), /needs queues of 2 or more: one queue has nothing to pick from \(--queues\)$/);
  });

  it('puts the late queues right after the queues unless told otherwise, and refuses them past 65535 or over the queues', () => {
    const late = (text: string): number | undefined => lateQueueOf(parseConfig(text, '/etc/nfqwall/nfqwall.conf').config);
    assert.equal(late(''), 1);
    assert.equal(late('queue = 10\nqueues = 2\n'), 12);
    assert.equal(late('queue = 10\nlate_queue = 3\n'), 3);
    assert.equal(late('late_queue = off\n'), undefined);
    assert.deepEqual(errorsOf('queue = 65535'), [
      '/etc/nfqwall/nfqwall.conf:1:1: late_queue: the late queues 65536..65536 go past 65535: set late_queue to a free number, or off',
    ]);
    assert.deepEqual(errorsOf('queue = 4\nqueues = 3\nlate_queue = 6'), [
      '/etc/nfqwall/nfqwall.conf:3:1: late_queue: the late queues 6..8 overlap the queues 4..6',
    ]);
    assert.match(errorsOf('late_queue = soon')[0]!, /:1:14: late_queue: "soon" is not a queue number \(0\.\.65535\), auto or off/);
    assert.equal(lateQueueOf(applyOverrides(defaultConfig(), { queue: '65535', lateQueue: 'off' })), undefined);
    assert.equal(lateQueueOf(applyOverrides(defaultConfig(), { lateQueue: '9' })), 9);
    assert.throws(() => applyOverrides(defaultConfig(), { queues: '2', lateQueue: '1' }), /^Error: --late-queue: the late queues 1\.\.2 overlap the queues 0\.\.1$/);
  });

  it('parses listen addresses', () => {
    assert.deepEqual(parseListen('0.0.0.0:1'), { host: '0.0.0.0', port: 1 });
    assert.deepEqual(parseListen(':9469'), { host: '0.0.0.0', port: 9469 });
    assert.throws(() => parseListen('1.2.3.4:0'), /not ADDR:PORT/);
    assert.throws(() => parseListen('::1:80'), /not ADDR:PORT/);
  });

  it('an unreadable file is an error naming it', () => {
    assert.throws(() => loadConfigFile('/nonexistent/nfqwall.conf'), /\/nonexistent\/nfqwall\.conf:0:0: cannot read configuration/);
  });

  it('examples/nfqwall.conf parses and its rule file exists beside it', () => {
    const file = path.join(packageRoot(), 'examples', 'nfqwall.conf');
    const { config, given } = loadConfigFile(file);
    assert.ok(config.rules !== undefined && fs.existsSync(config.rules), `rules: ${config.rules}`);
    // Every key the format knows is documented in the example's comment block.
    const text = fs.readFileSync(file, 'utf8');
    for (const key of ['rules', 'rules6', 'ipset', 'queue', 'queues', 'queue_cpu_fanout', 'late_queue', 'queue_maxlen', 'fail_open', 'hooks', 'conntrack_max', 'metrics', 'log_level', 'log_destination', 'log_rate', 'log_burst', 'control', 'control_mode', 'control_group']) {
      assert.match(text, new RegExp(`^#   ${key} = `, 'm'), `key ${key} documented`);
    }
    assert.ok(given.size >= 10);
  });
});

describe('config: precedence (defaults < file < flags)', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-config-'));
    fs.writeFileSync(
      path.join(dir, 'n.conf'),
      'rules = file.v4\nqueue = 3\nfail_open = yes\nipset = f.ipset\nlog_level = warning\nmetrics = 127.0.0.1:1000\ncontrol = c.sock\n',
    );
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('the file overrides the defaults', () => {
    const c = resolveConfig(path.join(dir, 'n.conf'), {}, '/cwd');
    assert.equal(c.rules, path.join(dir, 'file.v4'));
    assert.equal(c.queue, 3);
    assert.equal(c.failOpen, true);
    assert.equal(c.logLevel, 'warning');
    assert.equal(c.control, path.join(dir, 'c.sock'));
    assert.equal(c.queues, 1);
  });

  it('flags override the file; flag paths resolve against the cwd', () => {
    const c = resolveConfig(
      path.join(dir, 'n.conf'),
      { rules: 'mine.v4', rules6: '/x/r6', ipset: ['s1', 's2'], queue: '9', queues: '1', failOpen: false, control: '/tmp/x.sock', metrics: 'off', logLevel: 'debug' },
      '/cwd',
    );
    assert.equal(c.rules, '/cwd/mine.v4');
    assert.equal(c.rules6, '/x/r6');
    assert.deepEqual(c.ipsets, ['/cwd/s1', '/cwd/s2']);
    assert.equal(c.queue, 9);
    assert.equal(c.failOpen, false);
    assert.equal(c.control, '/tmp/x.sock');
    assert.equal(c.metrics, undefined);
    assert.equal(c.logLevel, 'debug');
  });

  it('flags alone work over the defaults, and a bad flag names itself', () => {
    const c = applyOverrides(defaultConfig(), { rules: 'r', failOpen: true }, '/w');
    assert.equal(c.rules, '/w/r');
    assert.equal(c.failOpen, true);
    assert.equal(c.queue, 0);
    assert.throws(() => applyOverrides(defaultConfig(), { queue: 'x' }), /^Error: --queue: "x" is not a queue number/);
    assert.throws(() => applyOverrides(defaultConfig(), { logLevel: 'loud' }), /^Error: --log-level: /);
    assert.throws(() => applyOverrides(defaultConfig(), { metrics: 'nope' }), /^Error: --metrics: /);
  });

  it('a broken configuration file stops resolution with its errors', () => {
    fs.writeFileSync(path.join(dir, 'bad.conf'), 'queue = -1\n');
    assert.throws(() => resolveConfig(path.join(dir, 'bad.conf'), { queue: '1' }), (err: unknown) => {
      assert.ok(err instanceof ConfigErrors);
      assert.match(err.message, /bad\.conf:1:9: queue: "-1" is not a queue number/);
      return true;
    });
  });
});

describe('config: skip_mark / --skip-mark', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-config-skip-'));
    fs.writeFileSync(path.join(dir, 'skip.conf'), 'rules = r.v4\nskip_mark = 0x300\n');
    fs.writeFileSync(path.join(dir, 'none.conf'), 'rules = r.v4\n');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('defaults to bits 0x30000000', () => {
    assert.equal(defaultConfig().skipMark, 0x30000000);
    assert.equal(parseConfig('rules = r\n', '/x/c.conf').config.skipMark, 0x30000000);
  });

  it('reads two bits in hex or decimal, adjacent or not, and 0 or off for none', () => {
    const read = (v: string): number => parseConfig(`skip_mark = ${v}\n`, '/x/c.conf').config.skipMark;
    assert.equal(read('0x300'), 0x300);
    assert.equal(read('0x80000001'), 0x80000001);
    assert.equal(read('0xc0000000'), 0xc0000000);
    assert.equal(read('768'), 768);
    assert.equal(read('3'), 3);
    assert.equal(read('0x0000000a'), 0xa);
    assert.equal(read('0'), 0);
    assert.equal(read('off'), 0);
    assert.ok(parseConfig('skip_mark = off\n', '/x/c.conf').given.has('skip_mark'));
  });

  it('names file:line:column, the key and the value when it is not two bits', () => {
    assert.deepEqual(errorsOf('queue = 1\nskip_mark = 0x10000000\n'), [
      '/etc/nfqwall/nfqwall.conf:2:13: skip_mark: "0x10000000" is not two mark bits (such as 0x30000000), 0 or off',
    ]);
    // One bit, three bits, every bit, past 32 bits, negative, not a number.
    for (const bad of ['1', '0x100', '7', '0x70000000', '0xffffffff', '0x100000000', '0x300000000', '12884901888', '-3', 'yes', '0x', '3e0', '0b11']) {
      const errs = errorsOf(`skip_mark = ${bad}`);
      assert.equal(errs.length, 1, bad);
      assert.equal(errs[0], `/etc/nfqwall/nfqwall.conf:1:13: skip_mark: "${bad}" is not two mark bits (such as 0x30000000), 0 or off`);
    }
    assert.throws(() => parseSkipMark('0x10000000'), /"0x10000000" is not two mark bits/);
    assert.throws(() => parseSkipMark('0x10000001x'), /"0x10000001x" is not two mark bits/);
    assert.equal(parseSkipMark('0x10000001'), 0x10000001);
  });

  it('the file overrides the default and --skip-mark overrides the file', () => {
    assert.equal(resolveConfig(path.join(dir, 'skip.conf'), {}, '/cwd').skipMark, 0x300);
    assert.equal(resolveConfig(path.join(dir, 'none.conf'), {}, '/cwd').skipMark, 0x30000000);
    assert.equal(resolveConfig(path.join(dir, 'skip.conf'), { skipMark: '0x60000000' }, '/cwd').skipMark, 0x60000000);
    assert.equal(resolveConfig(path.join(dir, 'skip.conf'), { skipMark: 'off' }, '/cwd').skipMark, 0);
    assert.equal(applyOverrides(defaultConfig(), { skipMark: '0' }).skipMark, 0);
    assert.equal(applyOverrides(defaultConfig(), { skipMark: '1536' }).skipMark, 1536);
  });

  it('a bad --skip-mark names the flag and the value', () => {
    assert.throws(
      () => applyOverrides(defaultConfig(), { skipMark: '1024' }),
      /^Error: --skip-mark: "1024" is not two mark bits \(such as 0x30000000\), 0 or off$/,
    );
    assert.throws(() => resolveConfig(path.join(dir, 'skip.conf'), { skipMark: 'on' }), /^Error: --skip-mark: "on"/);
  });
});

describe('config: heap_limit / --heap-limit', () => {
  const parse = (text: string) => parseConfig(text, '/etc/nfqwall/nfqwall.conf').config;

  it('auto (the default) leaves the budget to the daemon; a number is MiB', () => {
    assert.equal(defaultConfig().heapLimitMiB, undefined);
    assert.equal(parse('heap_limit = auto').heapLimitMiB, undefined);
    assert.equal(parse('heap_limit = 12288').heapLimitMiB, 12288);
  });

  it('names file:line:column, the key and the value when it is not auto or 64 MiB and more', () => {
    for (const bad of ['32', '1.5', '8G', '-1', 'off']) assert.match(errorsOf(`heap_limit = ${bad}`)[0]!, new RegExp(`:1:\\d+: heap_limit: "${bad}" is not a heap limit`));
  });

  it('--heap-limit overrides the file, auto included', () => {
    const file = parse('heap_limit = 1024');
    assert.equal(applyOverrides(file, { heapLimit: '2048' }).heapLimitMiB, 2048);
    assert.equal(applyOverrides(file, { heapLimit: 'auto' }).heapLimitMiB, undefined);
    assert.throws(() => applyOverrides(file, { heapLimit: '10' }), /^Error: --heap-limit: "10" is not a heap limit/);
  });
});
