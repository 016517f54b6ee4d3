// The STATUS= line systemd shows: the rules loaded and the packets of every queue, the flow cache's included.
import assert from 'node:assert/strict';
import { statusLine } from '../../src/daemon/systemd';

const chains = (n: number) => new Map([['INPUT', { rules: new Array<unknown>(n).fill(0) }]]);

describe('systemd: status line', () => {
  it('counts the rules of both families and the packets of every queue', () => {
    const line = statusLine({
      rules: { rules4: { tables: new Map([['filter', { chains: chains(3) }]]) }, rules6: { tables: new Map([['filter', { chains: chains(2) }]]) } },
      queueStats: () => [
        { received: 10, accepted: 7, dropped: 3 },
        { received: 5, accepted: 5, dropped: 0 },
      ],
      opts: { queue: 20, queues: 2 },
    });
    assert.equal(line, 'queues 20-21: 5 rules loaded; 15 packets seen, 12 accepted, 3 dropped');
  });

  it('names the late queues after the queues', () => {
    const stats = () => [{ received: 4, accepted: 4, dropped: 0 }, { received: 2, accepted: 1, dropped: 1 }];
    assert.equal(statusLine({ rules: {}, queueStats: stats, opts: { queue: 5, lateQueue: 6 } }), 'queue 5, late queue 6: 0 rules loaded; 6 packets seen, 5 accepted, 1 dropped');
    assert.equal(statusLine({ rules: {}, queueStats: stats, opts: { queue: 5, queues: 2, lateQueue: 9 } }), 'queues 5-6, late queues 9-10: 0 rules loaded; 6 packets seen, 5 accepted, 1 dropped');
  });

  it('names the one queue when there is one, and reads 0 before it is bound', () => {
    const line = statusLine({ rules: {}, queueStats: () => [], opts: { queue: 0 } });
    assert.equal(line, 'queue 0: 0 rules loaded; 0 packets seen, 0 accepted, 0 dropped');
  });
});
