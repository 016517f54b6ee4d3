import assert from 'node:assert/strict';
import frag, { type FragOptions } from '../../src/extensions/frag';
import { KERNEL_CASES } from './b-kernel-cases';
import { context, kernelCases, packet, parseCtx, refusal, uses } from './b-fixture';

const V6 = { family: 6 as const };

function opts(text: string): FragOptions {
  return frag.parse(uses(frag, text), parseCtx(V6));
}

/** A fragment header body after the next-header byte: reserved, offset/flags, identification. */
function fragment(offset: number, more: boolean, id: number) {
  const off = (offset & 0xfff8) | (more ? 1 : 0);
  return { type: 44, body: [0, off >> 8, off & 255, id >>> 24, (id >> 16) & 255, (id >> 8) & 255, id & 255] };
}

describe('frag match', () => {
  kernelCases(frag, KERNEL_CASES.frag!);
  it('refuses --fragmore with --fraglast at --fragmore', () => {
    assert.equal(refusal(frag, '--fraglast --fragmore', V6).loc.column, 12);
  });
  it('matches identification, first/more/last', () => {
    const first = packet({ family: 6, ext: [fragment(0, true, 7)] });
    const last = packet({ family: 6, ext: [fragment(1448, false, 7)] });
    assert.equal(frag.match!(opts('--fragid 7 --fragfirst --fragmore'), context(first)), true);
    assert.equal(frag.match!(opts('--fragfirst'), context(last)), false);
    assert.equal(frag.match!(opts('--fraglast'), context(last)), true);
    assert.equal(frag.match!(opts('! --fragid 5:9'), context(last)), false);
    assert.equal(frag.match!(opts('--fragid 8:9'), context(last)), false);
    assert.equal(frag.match!(opts(''), context(packet({ family: 6 }))), false);
  });
});
