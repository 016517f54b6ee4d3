import assert from 'node:assert/strict';
import ipv6header, { type Ipv6headerOptions } from '../../src/extensions/ipv6header';
import { KERNEL_CASES } from './b-kernel-cases';
import { context, kernelCases, packet, parseCtx, refusal, uses } from './b-fixture';

const V6 = { family: 6 as const };

function opts(text: string): Ipv6headerOptions {
  return ipv6header.parse(uses(ipv6header, text), parseCtx(V6));
}

const hop = { type: 0, body: [0, 1, 4, 0, 0, 0, 0] };
const frag = { type: 44, body: [0, 0, 1, 0, 0, 0, 9] };

describe('ipv6header match', () => {
  kernelCases(ipv6header, KERNEL_CASES.ipv6header!);
  it('refuses headers that are not extension headers, naming their number', () => {
    assert.match(refusal(ipv6header, '--header tcp', V6).reason, /unknown header `6'/);
  });
  it('exact match by default: the set of headers, with the upper-layer protocol', () => {
    const p = packet({ family: 6, ext: [hop, frag] });
    assert.equal(ipv6header.match!(opts('--header hop,frag,protocol'), context(p)), true);
    assert.equal(ipv6header.match!(opts('--header hop,frag'), context(p)), false);
    assert.equal(ipv6header.match!(opts('! --header hop,frag'), context(p)), true);
  });
  it('--soft: every named header is present', () => {
    const p = packet({ family: 6, ext: [hop, frag] });
    assert.equal(ipv6header.match!(opts('--header frag --soft'), context(p)), true);
    assert.equal(ipv6header.match!(opts('--header route --soft'), context(p)), false);
    assert.equal(ipv6header.match!(opts('! --header route --soft'), context(p)), true);
    assert.equal(ipv6header.match!(opts('--header none'), context(packet({ family: 6, proto: 59 }))), true);
  });
});
