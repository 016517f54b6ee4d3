// LateFirst: late batches before early ones, one early batch per turn of the event loop, each kind in its order.
import assert from 'node:assert/strict';
import { LateFirst } from '../../src/daemon/late-first';

const turn = (): Promise<void> => new Promise((res) => setImmediate(res));

describe('daemon/late-first', () => {
  it('decides every late batch, then one early one, on the next turn; late ones that come meanwhile go first', async () => {
    const done: string[] = [];
    const order = new LateFirst<string>((s) => done.push(s));
    order.add('e1', false);
    order.add('e2', false);
    order.add('l1', true);
    order.add('l2', true);
    assert.deepEqual(done, [], 'nothing is decided in the call that adds it');
    await turn();
    assert.deepEqual(done, ['l1', 'l2', 'e1']);
    order.add('l3', true);
    order.add('e3', false);
    await turn();
    assert.deepEqual(done, ['l1', 'l2', 'e1', 'l3', 'e2']);
    await turn();
    await turn();
    assert.deepEqual(done, ['l1', 'l2', 'e1', 'l3', 'e2', 'e3']);
    assert.deepEqual(order.waiting, { late: 0, early: 0 });
  });

  it('forgets what waits when cleared', async () => {
    const done: string[] = [];
    const order = new LateFirst<string>((s) => done.push(s));
    order.add('e1', false);
    order.add('l1', true);
    order.clear();
    await turn();
    assert.deepEqual(done, []);
    order.add('e2', false);
    await turn();
    assert.deepEqual(done, ['e2']);
  });
});
