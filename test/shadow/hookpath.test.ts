import assert from 'node:assert/strict';
import { StaticHost } from '../../src/engine/host';
import { planHooks, StaticRoutes, type CaptureSide } from '../../src/shadow/hookpath';
import { ip } from './helpers';

// fw: 198.18.0.1 on to-client, 198.19.0.1 on to-server.
const host = new StaticHost({
  local: ['198.18.0.1', '198.19.0.1', '2001:db8::1', '127.0.0.1'],
  routes: [{ dst: '198.18.0.255', type: 'BROADCAST', dev: 'to-client' }],
});
const routes = new StaticRoutes((_f, dst) => (dst.startsWith('198.18.') || dst.startsWith('2001:db8::') ? 'to-client' : dst.startsWith('198.19.') ? 'to-server' : undefined));

function side(iface: string, direction: 'in' | 'out' | undefined, captured = [iface]): CaptureSide {
  return { iface, direction, captured: new Set(captured) };
}
function plan(src: string, dst: string, s: CaptureSide, r = routes) {
  return planHooks({ family: src.includes(':') ? 6 : 4, src: ip(src), dst: ip(dst) }, s, host, r);
}

describe('shadow: hook path reconstruction', () => {
  it('incoming to a local address: PREROUTING, INPUT with the capture interface as in', () => {
    assert.deepEqual(plan('198.18.0.2', '198.18.0.1', side('to-client', 'in')), {
      kind: 'local-in',
      steps: [{ hook: 'PREROUTING', inIface: 'to-client' }, { hook: 'INPUT', inIface: 'to-client' }],
    });
    assert.equal(plan('198.18.0.2', '198.18.0.255', side('to-client', 'in')).kind, 'local-in');
  });

  it('incoming for elsewhere: PREROUTING, FORWARD, POSTROUTING with the routed out interface', () => {
    assert.deepEqual(plan('198.18.0.2', '198.19.0.2', side('to-client', 'in')), {
      kind: 'forward',
      steps: [
        { hook: 'PREROUTING', inIface: 'to-client' },
        { hook: 'FORWARD', inIface: 'to-client', outIface: 'to-server' },
        { hook: 'POSTROUTING', outIface: 'to-server' },
      ],
    });
  });

  it('no route, or forwarding off: PREROUTING only', () => {
    assert.deepEqual(plan('198.18.0.2', '203.0.113.9', side('to-client', 'in')), {
      kind: 'unroutable',
      steps: [{ hook: 'PREROUTING', inIface: 'to-client' }],
    });
    const off = new StaticRoutes(() => 'to-server', false);
    assert.equal(plan('198.18.0.2', '198.19.0.2', side('to-client', 'in'), off).kind, 'unroutable');
  });

  it('outgoing from a local address: OUTPUT, POSTROUTING', () => {
    assert.deepEqual(plan('198.18.0.1', '198.18.0.2', side('to-client', 'out')), {
      kind: 'local-out',
      steps: [{ hook: 'OUTPUT', outIface: 'to-client' }, { hook: 'POSTROUTING', outIface: 'to-client' }],
    });
  });

  it('outgoing forwarded: evaluated once, where it came in when that side is captured too', () => {
    const s = plan('198.19.0.2', '198.18.0.2', side('to-client', 'out'));
    assert.deepEqual(s, {
      kind: 'forward',
      steps: [
        { hook: 'PREROUTING', inIface: 'to-server' },
        { hook: 'FORWARD', inIface: 'to-server', outIface: 'to-client' },
        { hook: 'POSTROUTING', outIface: 'to-client' },
      ],
    });
    assert.deepEqual(plan('198.19.0.2', '198.18.0.2', side('to-client', 'out', ['to-client', 'to-server'])), {
      kind: 'skip',
      reason: 'forwarded out, evaluated where it came in',
    });
  });

  it('without a direction, the source address decides', () => {
    assert.equal(plan('198.18.0.1', '198.18.0.2', side('to-client', undefined)).kind, 'local-out');
    assert.equal(plan('198.18.0.2', '198.18.0.1', side('to-client', undefined)).kind, 'local-in');
  });

  it('loopback: both halves', () => {
    const p = plan('127.0.0.1', '127.0.0.1', side('lo', 'in'));
    assert.equal(p.kind, 'loopback');
    assert.deepEqual('steps' in p ? p.steps.map((s) => s.hook) : [], ['OUTPUT', 'POSTROUTING', 'PREROUTING', 'INPUT']);
  });
});
