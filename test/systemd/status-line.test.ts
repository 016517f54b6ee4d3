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
      opts: { queue: 20 },
    });
    assert.equal(line, 'queues 20-21: 5 rules loaded; 15 packets seen, 12 accepted, 3 dropped');
  });

  it('names the one queue when there is one, and reads 0 before it is bound', () => {
    const line = statusLine({ rules: {}, queueStats: () => [], opts: { queue: 0 } });
    assert.equal(line, 'queue 0: 0 rules loaded; 0 packets seen, 0 accepted, 0 dropped');
  });
});
