// StrictModes for rule, ipset and configuration files: what is refused, what the message says, and that the daemon's
// loader (start and reload) refuses before reading.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkFileSafety, fileProblems, UnsafeFileError } from '../../src/daemon/files';
import { loadRulesets } from '../../src/daemon/daemon';

const RULES = '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp --dport 53 -j ACCEPT\nCOMMIT\n';
const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;
const me = (): number => (typeof process.geteuid === 'function' ? process.geteuid() : 0);

describe('robust: rule file permissions (StrictModes)', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-files-'));
    file = path.join(dir, 'rules.v4');
    fs.writeFileSync(file, RULES, { mode: 0o644 });
    fs.chmodSync(file, 0o644);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('accepts a 0644 file in a 0700 directory under the sticky /tmp', () => {
    assert.deepEqual(fileProblems(file), []);
    checkFileSafety([file]);
    assert.equal(loadRulesets({ rules4: file }).rules4?.family, 4);
  });

  for (const [mode, who] of [
    [0o664, 'group'],
    [0o646, 'others'],
    [0o666, 'group and others'],
  ] as const) {
    it(`refuses a file writable by ${who} (${mode.toString(8)}) and says how to fix it`, () => {
      fs.chmodSync(file, mode);
      const problems = fileProblems(file);
      assert.equal(problems.length, 1);
      assert.match(problems[0]!, new RegExp(`^${file}: writable by ${who} \\(mode 0${mode.toString(8)}\\); fix: chmod go-w ${file}$`));
      assert.throws(() => checkFileSafety([file]), (err: unknown) => {
        assert.ok(err instanceof UnsafeFileError);
        assert.equal(err.file, file);
        assert.match(err.message, /refusing to trust/);
        assert.match(err.message, /chmod go-w/);
        return true;
      });
    });
  }

  it('refuses a group- or world-writable directory above the file, naming the directory', () => {
    const sub = path.join(dir, 'etc');
    fs.mkdirSync(sub);
    const f = path.join(sub, 'rules.v4');
    fs.writeFileSync(f, RULES);
    fs.chmodSync(f, 0o644);
    fs.chmodSync(sub, 0o755);
    assert.deepEqual(fileProblems(f), []);
    fs.chmodSync(dir, 0o777);
    const problems = fileProblems(f);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, new RegExp(`^directory ${dir} \\(above ${f}\\): writable by group and others .*chmod go-w ${dir}$`));
    fs.chmodSync(dir, 0o770);
    assert.match(fileProblems(f)[0]!, /writable by group \(mode 0770\)/);
  });

  it('accepts a sticky world-writable directory (like /tmp), refuses the same without the sticky bit', () => {
    fs.chmodSync(dir, 0o1777);
    assert.deepEqual(fileProblems(file), []);
    fs.chmodSync(dir, 0o777);
    assert.equal(fileProblems(file).length, 1);
    fs.chmodSync(dir, 0o700);
  });

  it('refuses a file owned by a uid that is neither root nor the daemon user', function () {
    // Without root a file cannot be given away; pretend instead that only some other uid may own it.
    const problems = fileProblems(file, { owners: [me() + 4242] });
    assert.ok(problems.some((p) => p.startsWith(`${file}: owned by uid ${me()}`) && p.includes(`chown root ${file}`)), problems.join('\n'));
    if (!isRoot()) return;
    fs.chownSync(file, 65534, 65534);
    assert.match(fileProblems(file)[0]!, /owned by uid 65534, not root; fix: chown root/);
  });

  it('follows symbolic links: an unsafe target behind a safe link is refused', () => {
    const evil = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-files-evil-'));
    try {
      const target = path.join(evil, 'real.rules');
      fs.writeFileSync(target, RULES);
      fs.chmodSync(target, 0o666);
      const link = path.join(dir, 'link.rules');
      fs.symlinkSync(target, link);
      const problems = fileProblems(link);
      assert.ok(problems.some((p) => p.startsWith(`${target}: writable`)), problems.join('\n'));
    } finally {
      fs.rmSync(evil, { recursive: true, force: true });
    }
  });

  it('leaves a missing file to the reader, which names it', () => {
    const gone = path.join(dir, 'missing.rules');
    assert.deepEqual(fileProblems(gone), []);
    assert.throws(() => loadRulesets({ rules4: gone }), /missing\.rules/);
  });

  it('the loader (daemon start and every reload) refuses an unsafe rule or ipset file before reading it', () => {
    const ipset = path.join(dir, 'sets.ipset');
    fs.writeFileSync(ipset, 'create blocked hash:ip family inet\n');
    fs.chmodSync(ipset, 0o644);
    assert.ok(loadRulesets({ rules4: file, ipsets: [ipset] }).sets);
    fs.chmodSync(ipset, 0o666);
    assert.throws(() => loadRulesets({ rules4: file, ipsets: [ipset] }), (err: unknown) => {
      assert.ok(err instanceof UnsafeFileError);
      assert.equal(err.file, ipset);
      return true;
    });
    fs.chmodSync(ipset, 0o644);
    fs.chmodSync(file, 0o620);
    assert.throws(() => loadRulesets({ rules4: file }), /chmod go-w/);
  });
});
