import assert from 'node:assert/strict';
import socket from '../../src/extensions/socket';
import { KERNEL_CASES } from './b-kernel-cases';
import { kernelCases } from './b-fixture';

describe('socket match', () => {
  kernelCases(socket, KERNEL_CASES.socket!);
  it('parses and prints, but is not enforced: it says why', () => {
    assert.ok((socket.unsupported ?? '').startsWith('socket: '));
    assert.equal(socket.match, undefined);
  });
});
