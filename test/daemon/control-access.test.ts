import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkFields, ControlServer, controlRequest, handleLine, resolveGroup } from '../../src/daemon/control';

describe('daemon/control: request fields and socket access', () => {
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-ctl-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('refuses fields a command does not take', async () => {
    const handlers = {
      reload: (req: Parameters<typeof checkFields>[0]) => {
        checkFields(req, []);
        return {};
      },
      counters: (req: Parameters<typeof checkFields>[0]) => {
        checkFields(req, ['zero']);
        return { zero: req['zero'] ?? null };
      },
    };
    assert.deepEqual(await handleLine('{"cmd":"reload"}', handlers), { ok: true });
    assert.deepEqual(await handleLine('{"cmd":"reload","force":1}', handlers), {
      ok: false,
      error: 'malformed request: "reload" takes no field "force"',
    });
    assert.deepEqual(await handleLine('{"cmd":"counters","zeroo":true}', handlers), {
      ok: false,
      error: 'malformed request: "counters" takes no field "zeroo" (known: zero)',
    });
  });

  it('resolves group names from a group file and numbers as they are', () => {
    const gf = path.join(dir, 'group');
    fs.writeFileSync(gf, 'root:x:0:\nnfqwall:x:4242:alice\n');
    assert.equal(resolveGroup('nfqwall', gf), 4242);
    assert.equal(resolveGroup('77', gf), 77);
    assert.throws(() => resolveGroup('nobody-here', gf), /control_group: no group "nobody-here"/);
  });

  it('creates the socket 0600 by default, and with the given mode and group', async () => {
    const a = await ControlServer.listen(path.join(dir, 'a.sock'), { status: () => ({}) });
    assert.equal(fs.statSync(path.join(dir, 'a.sock')).mode & 0o777, 0o600);
    await a.close();
    const gid = process.getgid?.() ?? 0;
    const sub = path.join(dir, 'run');
    const b = await ControlServer.listen(path.join(sub, 'b.sock'), { status: () => ({ x: 1 }) }, { mode: 0o660, group: String(gid) });
    const st = fs.statSync(path.join(sub, 'b.sock'));
    assert.equal(st.mode & 0o777, 0o660);
    assert.equal(st.gid, gid);
    // The directory nfqwall created is opened to the group so members can reach the socket.
    assert.equal(fs.statSync(sub).mode & 0o777, 0o710);
    assert.deepEqual(await controlRequest(path.join(sub, 'b.sock'), { cmd: 'status' }), { ok: true, x: 1 });
    await b.close();
  });
});
