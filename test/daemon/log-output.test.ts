// Log lines when they cannot be written (src/daemon/logger.ts): lost lines are counted, nothing throws, and the first
// line written again is preceded by how many were lost. The full-disk case end to end is in
// test/robust/netfaults.lab.test.ts.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { PassThrough, Writable } from 'node:stream';
import { FdLineSink, Logger } from '../../src/daemon/logger';

describe('daemon/logger: lines that cannot be written', () => {
  it('counts lines a writer refuses and reports them before the next line that gets through', () => {
    const out: string[] = [];
    let full = false;
    const log = new Logger({
      level: 'info',
      write: (line) => {
        if (full) throw Object.assign(new Error('no space'), { code: 'ENOSPC' });
        out.push(line);
      },
    });
    log.info('one');
    full = true;
    log.info('two');
    log.warning('three');
    log.debug('not logged at info: not lost either');
    assert.equal(log.dropped, 2);
    full = false;
    log.info('four');
    log.info('five');
    assert.deepEqual(out, ['<6>one', '<4>lost 2 log lines lost=2 error=ENOSPC total=2', '<6>four', '<6>five']);
    assert.equal(log.dropped, 2);
  });

  it('writes a file descriptor synchronously and counts ENOSPC from /dev/full', () => {
    const fd = fs.openSync('/dev/full', 'w');
    try {
      const sink = new FdLineSink(fd);
      const lost: string[] = [];
      for (let i = 0; i < 3; i++) sink.write(`line ${i}`, (code) => lost.push(code));
      assert.deepEqual(lost, ['ENOSPC', 'ENOSPC', 'ENOSPC']);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('a stream that fails counts the lines through its callbacks and never emits an unhandled error', async () => {
    const failing = new Writable({
      write(_chunk, _enc, cb) {
        cb(Object.assign(new Error('broken pipe'), { code: 'EPIPE' }));
      },
    });
    // No descriptor fstat can read: the sink writes through the stream, as it does for a pipe or socket.
    const sink = new FdLineSink(-1, failing);
    const lost: string[] = [];
    sink.write('a', (c) => lost.push(c));
    sink.write('b', (c) => lost.push(c));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(lost.length, 2, 'both failed writes were counted');
    assert.equal(lost[0], 'EPIPE');
    assert.ok(lost.every((c) => c === 'EPIPE' || c === 'ERR_STREAM_DESTROYED'), lost.join(','));
  });

  it('drops instead of buffering without bound when the stream does not drain', () => {
    const stalled = new PassThrough({ highWaterMark: 16 }); // nobody reads it
    const sink = new FdLineSink(-1, stalled);
    let lost = 0;
    const line = 'y'.repeat(1024);
    for (let i = 0; i < 6 * 1024; i++) sink.write(line, () => lost++);
    assert.ok(lost > 0, 'lines were dropped once the backlog passed its bound');
    assert.ok(stalled.writableLength <= 4 * 1024 * 1024 + 2048, `backlog ${stalled.writableLength} bytes`);
  });
});
