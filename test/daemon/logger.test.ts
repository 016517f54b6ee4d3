import assert from 'node:assert/strict';
import { formatLine, Logger, LogRecordSink, RateLimiter } from '../../src/daemon/logger';

describe('daemon/logger', () => {
  it('prefixes journald priorities and writes fields as logfmt', () => {
    assert.equal(formatLine('err', 'reload failed', { trigger: 'SIGHUP', errors: 2 }), '<3>reload failed trigger=SIGHUP errors=2');
    assert.equal(formatLine('info', 'x', { why: 'two words', q: 'a"b', skip: undefined }), '<6>x why="two words" q="a\\"b"');
    assert.equal(formatLine('debug', 'multi\nline'), '<7>multi | line');
    assert.equal(formatLine('warning', 'w'), '<4>w');
    assert.equal(formatLine('notice', 'n'), '<5>n');
  });

  it('drops lines above the level', () => {
    const lines: string[] = [];
    const log = new Logger({ level: 'notice', write: (l) => lines.push(l) });
    log.debug('d');
    log.info('i');
    log.notice('n');
    log.warning('w');
    log.err('e');
    log.raw(6, 'kernel info');
    log.raw(4, 'kernel warning');
    assert.deepEqual(lines, ['<5>n', '<4>w', '<3>e', '<4>kernel warning']);
    assert.equal(log.enabled('info'), false);
  });
});

describe('daemon/logger: LOG rate limit', () => {
  it('passes a burst, then the rate, and counts what it refuses', () => {
    let t = 0;
    const rl = new RateLimiter({ rate: 10, burst: 5, now: () => t });
    let passed = 0;
    for (let i = 0; i < 20; i++) if (rl.allow()) passed++;
    assert.equal(passed, 5);
    assert.equal(rl.suppressed, 15);
    t += 1000; // one second refills 10, capped at the burst of 5
    passed = 0;
    for (let i = 0; i < 20; i++) if (rl.allow()) passed++;
    assert.equal(passed, 5);
    t += 300; // 3 tokens
    passed = 0;
    for (let i = 0; i < 10; i++) if (rl.allow()) passed++;
    assert.equal(passed, 3);
    assert.equal(rl.takeSuppressed(), 15 + 15 + 7);
    assert.equal(rl.takeSuppressed(), 0);
  });

  it('writes records at their level and reports suppressed lines', () => {
    const lines: string[] = [];
    const t = 0;
    const sink = new LogRecordSink(new Logger({ level: 'info', write: (l) => lines.push(l) }), {
      rate: 1,
      burst: 2,
      now: () => t,
      reportMs: 0,
    });
    sink.write({ line: 'IN=eth0 OUT= SRC=1.2.3.4', level: 4 });
    sink.write({ line: 'second' });
    sink.write({ line: 'third' });
    sink.write({ line: 'fourth' });
    sink.report();
    sink.report();
    assert.deepEqual(lines, ['<4>IN=eth0 OUT= SRC=1.2.3.4', '<4>second', '<4>suppressed 2 LOG lines suppressed=2 total=2']);
    sink.close();
  });
});
