import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InterfaceNames } from '../../src/daemon/interfaces';

describe('daemon/interfaces', () => {
  let dir: string;
  let clock: number;
  const addDev = (name: string, index: number): void => {
    fs.mkdirSync(path.join(dir, name));
    fs.writeFileSync(path.join(dir, name, 'ifindex'), `${index}\n`);
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-ifaces-'));
    clock = 0;
    addDev('lo', 1);
    addDev('veth0', 7);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('maps indexes to names; 0 is no interface', () => {
    const n = new InterfaceNames({ sysDir: dir, now: () => clock });
    assert.equal(n.name(1), 'lo');
    assert.equal(n.name(7), 'veth0');
    assert.equal(n.name(0), undefined);
    assert.equal(n.size, 2);
  });

  it('learns a new device at its first packet; an index still unknown is reread at most once per second', () => {
    const n = new InterfaceNames({ sysDir: dir, now: () => clock });
    addDev('veth1', 9);
    clock = 10;
    assert.equal(n.name(9), 'veth1'); // at once, however recently the last read was
    assert.equal(n.name(11), undefined); // reread: not there
    addDev('veth2', 11);
    clock = 500;
    assert.equal(n.name(11), undefined); // too soon after the read that missed it
    addDev('veth3', 12);
    assert.equal(n.name(12), 'veth3'); // another new index is read at once, and with it 11
    assert.equal(n.name(11), 'veth2');
    assert.equal(n.name(13), undefined);
    fs.rmSync(path.join(dir, 'veth2'), { recursive: true });
    clock = 1400;
    assert.equal(n.name(13), undefined); // reread once the second has passed, still not there
    assert.equal(n.name(11), 'veth2'); // known until a reread forgets it
    n.refresh();
    assert.equal(n.name(11), undefined); // gone, and missed now: no reread for a second
    addDev('veth2b', 11);
    clock = 1900;
    assert.equal(n.name(11), undefined);
    clock = 2500;
    assert.equal(n.name(11), 'veth2b');
  });

  it('refresh() forgets devices that are gone', () => {
    const n = new InterfaceNames({ sysDir: dir, now: () => clock });
    fs.rmSync(path.join(dir, 'veth0'), { recursive: true });
    n.refresh();
    assert.equal(n.name(7), undefined);
    assert.equal(n.name(1), 'lo');
  });

  it('reads the real /sys/class/net', () => {
    const n = new InterfaceNames();
    assert.equal(n.name(1), 'lo'); // the loopback device is index 1 in every namespace
  });
});
