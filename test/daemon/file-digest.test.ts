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
    const digest = await first.digest;
    const sha = (b: Buffer | string): Buffer => createHash('sha256').update(b).digest();
    const chunked = (b: Buffer): string => sha(Buffer.concat([sha(b.subarray(0, READ_CHUNK)), sha(b.subarray(READ_CHUNK))])).toString('hex');
    assert.equal(digest, `${chunked(big)} ${sha(Buffer.concat([sha('create s hash:ip\n')])).toString('hex')}`, 'per file, the SHA-256 of its chunks\' SHA-256s');
    assert.equal(await (await readFiles([a, b]))!.digest, digest, 'the same bytes, the same digest');
    big[big.length - 1] = 0x79;
    fs.writeFileSync(a, big);
    assert.notEqual(await (await readFiles([a, b]))!.digest, digest, 'the last byte of the first file');
    fs.writeFileSync(b, 'create t hash:ip\n');
    const third = await readFiles([a, b]);
    assert.notEqual(await third!.digest, digest);
    assert.equal(third!.texts.get(b), 'create t hash:ip\n');
  });

  it('is undefined when a file cannot be read, and an empty file is read as empty', async () => {
    const empty = path.join(dir, 'empty');
    fs.writeFileSync(empty, '');
    const r = await readFiles([empty]);
    assert.equal(r!.texts.get(empty), '');
    assert.equal(await readFiles([empty, path.join(dir, 'missing')]), undefined);
  });
});
