// readFiles (src/daemon/file-digest.ts): a reload's one read of its files. The digest tells two versions apart, and
// their text is what the reload parses.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { READ_CHUNK, readFiles } from '../../src/daemon/file-digest';

describe('daemon/file-digest: the bytes a reload parses and their digest', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-digest-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('gives every file whole (larger than a read) and one digest that changes with any byte of any file', async () => {
    const a = path.join(dir, 'rules');
    const b = path.join(dir, 'sets');
    const big = Buffer.alloc(READ_CHUNK + (8 << 20) + 123, 'x');
    big.write('*filter\n', 0);
    // A two-byte character across the first chunk's end.
    big.write('é', READ_CHUNK - 1);
    fs.writeFileSync(a, big);
    fs.writeFileSync(b, 'create s hash:ip\n');
    const first = await readFiles([a, b]);
    assert.ok(first !== undefined);
    assert.equal(first.texts.get(a), big.toString('utf8'));
    assert.equal(first.texts.get(b), 'create s hash:ip\n');
    const digest = await first.digest();
    const sha = (b: Buffer | string): Buffer => createHash('sha256').update(b).digest();
    const chunked = (b: Buffer): string => sha(Buffer.concat([sha(b.subarray(0, READ_CHUNK)), sha(b.subarray(READ_CHUNK))])).toString('hex');
    assert.equal(digest, `${chunked(big)} ${sha(Buffer.concat([sha('create s hash:ip\n')])).toString('hex')}`, 'per file, the SHA-256 of its chunks\' SHA-256s');
    assert.equal(await (await readFiles([a, b]))!.digest(), digest, 'the same bytes, the same digest');
    big[big.length - 1] = 0x79;
    fs.writeFileSync(a, big);
    assert.notEqual(await (await readFiles([a, b]))!.digest(), digest, 'the last byte of the first file');
    fs.writeFileSync(b, 'create t hash:ip\n');
    const third = await readFiles([a, b]);
    assert.notEqual(await third!.digest(), digest);
    assert.equal(third!.texts.get(b), 'create t hash:ip\n');
  });

  it('hashes what a snapshot read, whenever its digest is asked: after the file changed, after another read', async () => {
    const a = path.join(dir, 'rules');
    const sha = (b: Buffer | string): Buffer => createHash('sha256').update(b).digest();
    const one = Buffer.from('*filter\n-A INPUT -j ACCEPT\nCOMMIT\n');
    fs.writeFileSync(a, one);
    const first = (await readFiles([a]))!;
    // The next read goes into the same buffer: the first snapshot's bytes are hashed before they are overwritten.
    const two = Buffer.from('*filter\n-A INPUT -j DROP\nCOMMIT\n');
    fs.writeFileSync(a, two);
    const second = (await readFiles([a]))!;
    fs.writeFileSync(a, 'changed after the reads\n');
    assert.equal(await second.digest(), sha(sha(two)).toString('hex'), 'the bytes read, not the file now');
    assert.equal(await first.digest(), sha(sha(one)).toString('hex'), 'the bytes read before another read');
    assert.equal(await first.digest(), await first.digest(), 'hashed once');
  });

  it('decodes UTF-8 after ASCII chunks, and hashes a one-chunk file as read even when it is asked after the file changed', async () => {
    const a = path.join(dir, 'rules');
    // The first chunk plain ASCII, the second not: the text is decoded as UTF-8 from where it stops being ASCII.
    const big = Buffer.alloc(READ_CHUNK + 100, 'x');
    big.write('# é ñ\n', READ_CHUNK + 10);
    fs.writeFileSync(a, big);
    assert.equal((await readFiles([a]))!.texts.get(a), big.toString('utf8'));
    const small = Buffer.from('*filter\n-A INPUT -m comment --comment "café" -j ACCEPT\nCOMMIT\n');
    fs.writeFileSync(a, small);
    const snap = (await readFiles([a]))!;
    assert.equal(snap.texts.get(a), small.toString('utf8'));
    fs.writeFileSync(a, 'changed after the read\n');
    const sha = (b: Buffer | string): Buffer => createHash('sha256').update(b).digest();
    assert.equal(await snap.digest(), sha(sha(small)).toString('hex'), 'the bytes read, not the file now');
    assert.equal(await snap.digest(), await snap.digest(), 'hashed once');
  });

  it('is undefined when a file cannot be read, and an empty file is read as empty', async () => {
    const empty = path.join(dir, 'empty');
    fs.writeFileSync(empty, '');
    const r = await readFiles([empty]);
    assert.equal(r!.texts.get(empty), '');
    assert.equal(await readFiles([empty, path.join(dir, 'missing')]), undefined);
  });
});
