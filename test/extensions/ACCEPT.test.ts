import assert from 'node:assert/strict';
import ACCEPT from '../../src/extensions/ACCEPT';
import DROP from '../../src/extensions/DROP';
import RETURN from '../../src/extensions/RETURN';
import TRACE from '../../src/extensions/TRACE';
import { RuleError } from '../../src/extensions/types';
import { meta, packet, pctx, roundTrip, tctx } from './t-fixture';

describe('ACCEPT, DROP, RETURN and TRACE targets', () => {
  const cases = [
    [ACCEPT, 'accept', true],
    [DROP, 'drop', true],
    [RETURN, 'return', true],
    [TRACE, 'continue', false],
  ] as const;
  for (const [ext, verdict, terminal] of cases) {
    it(`${ext.name}: no options, prints nothing, verdict ${verdict}`, () => {
      assert.equal(roundTrip(ext, ''), '');
      assert.equal(ext.terminal, terminal);
      assert.deepEqual(ext.apply?.(ext.parse([], pctx()), tctx(packet(), meta())), { verdict });
      const loc = { file: 'f', line: 3, column: 9 };
      assert.throws(
        () => ext.parse([{ name: 'x', args: [], negated: false, loc, argLocs: [] }], pctx()),
        (e: unknown) => e instanceof RuleError && e.message.startsWith('f:3:9: '),
      );
    });
  }
  it('TRACE is accepted in any table, as iptables-nft does', () => assert.equal(TRACE.allowed, undefined));
});
