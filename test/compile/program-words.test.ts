// Program memory (native/program_words.*, Matcher.programWords): the words a compile writes into a block are run in
// place, read-only while a program runs on them (a write faults), and the block is given back, zero, for the next
// compile once no program runs on it; MatcherPrograms alternates two blocks across reloads.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { compileProgram } from '../../src/compile/program';
import { craftPacket } from '../../src/engine/craft';
import { MatcherPrograms } from '../../src/daemon/matcher-programs';
import { ParseCache } from '../../src/rules/line-cache';
import type { Ruleset } from '../../src/rules/model';
import { parseRuleset } from '../../src/rules/parse';
import { runSync } from '../../src/steps';
import { addon, type MatcherInput } from '../../src/native';
import { kubeProxyRules } from '../../bench/parse';

const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -d 198.18.0.2/32 -p udp -m udp --dport 53 -j ACCEPT
-A FORWARD -d 198.18.0.3/32 -j REJECT
COMMIT
`;

const rules = (): Ruleset => parseRuleset(RULES, 'words.rules', { family: 4 });

function input(dst: number): MatcherInput {
  const data = craftPacket({ family: 4, src: Uint8Array.of(198, 19, 0, 1), dst: Uint8Array.of(198, 18, 0, dst), proto: 17, sport: 4000, dport: 53, payload: new Uint8Array(4) });
  return { data, family: 4, hook: 2, ct: { state: 1, dir: 0, status: 0, mark: 0 } };
}

/** Runs `script` (CommonJS, `addon`, `compileProgram` and `rules` in scope) in a node of its own. */
function child(script: string): { status: number | null; signal: NodeJS.Signals | null; out: string } {
  const dist = path.join(__dirname, '..', '..', 'src');
  const prelude = `const { addon } = require(${JSON.stringify(path.join(dist, 'native'))});
const { compileProgram } = require(${JSON.stringify(path.join(dist, 'compile', 'program'))});
const { parseRuleset } = require(${JSON.stringify(path.join(dist, 'rules', 'parse'))});
const rules = parseRuleset(${JSON.stringify(RULES)}, 'words.rules', { family: 4 });
`;
  const r = spawnSync(process.execPath, ['-e', prelude + script], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, signal: r.signal, out: r.stdout + r.stderr };
}

describe('matcher: program memory', () => {
  it('runs a program in its block as it runs a copy of it', () => {
    const m = new addon.Matcher();
    const p = compileProgram(rules(), 4, undefined, (n) => m.programWords(n));
    const copy = new addon.Matcher();
    copy.load(4, Uint32Array.from(p.words), 1);
    m.load(4, p.words, 1);
    assert.equal(m.serial(4), 1);
    for (const dst of [2, 3, 4]) assert.deepEqual(m.run(input(dst)), copy.run(input(dst)), `198.18.0.${dst}`);
    assert.equal(m.run(input(2))?.verdict, 1, 'the first rule accepts');
  });

  it('gives a block back, zero, once the program on it is replaced and drained; a busy one never', () => {
    const m = new addon.Matcher();
    const a = m.programWords(100);
    assert.ok(a.length >= 100 && a.every((w) => w === 0));
    const p = compileProgram(rules(), 4);
    a.set(p.words);
    m.load(4, a.subarray(0, p.words.length), 1);
    const busy = m.programWords(100, a);
    assert.notEqual(busy.buffer, a.buffer, 'a program runs on a: another block');
    assert.equal(m.programWords(a.length + 1, busy).buffer === busy.buffer, false, 'too short: another block');
    busy.set(p.words);
    m.load(4, busy.subarray(0, p.words.length), 2);
    assert.deepEqual(m.drain().done, [1]);
    const again = m.programWords(100, a.subarray(0, 10));
    assert.equal(again.buffer, a.buffer, 'the program on a is gone: a itself');
    assert.equal(again.length, a.length, 'the whole block');
    assert.ok(again.every((w) => w === 0), 'zero');
    assert.equal(m.run(input(2))?.verdict, 1, 'the program on the other block still runs');
  });

  it('one program at a time on a block: a second load of it is refused, and the first runs on', () => {
    const m = new addon.Matcher();
    const p = compileProgram(rules(), 4, undefined, (n) => m.programWords(n));
    m.load(4, p.words, 1);
    assert.throws(() => new addon.Matcher().load(4, p.words, 1), /a program already runs on these words/);
    assert.equal(m.run(input(2))?.verdict, 1);
  });

  it('a write to the words of a running program faults; once it is gone they can be written', () => {
    const running = child(`const m = new addon.Matcher();
const p = compileProgram(rules, 4, undefined, (n) => m.programWords(n));
m.load(4, p.words, 1);
process.stdout.write('loaded\\n');
p.words[0] = 1;
process.stdout.write('written\\n');`);
    assert.equal(running.signal, 'SIGSEGV', `the child ended with ${running.status}/${running.signal}: ${running.out}`);
    assert.match(running.out, /^loaded\n/);
    assert.doesNotMatch(running.out, /written/);
    const gone = child(`const m = new addon.Matcher();
const p = compileProgram(rules, 4, undefined, (n) => m.programWords(n));
m.load(4, p.words, 1);
m.clear(4);
m.drain();
p.words[0] = 1;
process.stdout.write('written ' + p.words[0] + '\\n');`);
    assert.equal(gone.status, 0, gone.out);
    assert.equal(gone.out, 'written 1\n');
  });

  it('build() checks a program on the pool for load() to put in force as is; words it refuses reject with the reason', async () => {
    const m = new addon.Matcher();
    const p = compileProgram(rules(), 4, undefined, (n) => m.programWords(n));
    const built = await m.build(4, p.words);
    assert.throws(() => new addon.Matcher().load(4, p.words, 1), /a program already runs on these words/, 'sealed by the check');
    assert.equal(m.serial(4), 0, 'not in force before load');
    m.load(4, built, 7);
    assert.equal(m.serial(4), 7);
    const copy = new addon.Matcher();
    copy.load(4, Uint32Array.from(p.words), 1);
    for (const dst of [2, 3, 4]) assert.deepEqual(m.run(input(dst)), copy.run(input(dst)), `198.18.0.${dst}`);
    const bad = Uint32Array.from(p.words);
    bad[0] = 1;
    await assert.rejects(m.build(4, bad), /^Error: Matcher\.build: not a matcher program \(bad magic\)$/);
    await assert.rejects(m.build(6, Uint32Array.from(p.words)), /Matcher\.build: the program is for IPv4/);
    assert.throws(() => m.load(4, built, 8), /this program was loaded already/);
  });

  it('reloads alternate two blocks, and each program is the one a compile from nothing makes', async () => {
    const m = new addon.Matcher();
    const programs = new MatcherPrograms(m);
    const cache = new ParseCache();
    const blocks: ArrayBufferLike[] = [];
    for (let k = 0; k < 5; k++) {
      const text = kubeProxyRules(40, 2, { replaced: new Set([k]) });
      const rs = parseRuleset(text, 'kube.rules', { family: 4, cache });
      const p = runSync(programs.prepare(rs))!;
      if (k > 0) assert.ok(p.reusedChains > 0, `reload ${k} copied no chain`);
      assert.deepEqual([...p.words], [...compileProgram(parseRuleset(text, 'kube.rules', { family: 4 }), 4).words], `reload ${k}`);
      // Checked on the pool first (as a daemon's reload does) in every other reload.
      if (k % 2 === 1) await programs.check(p);
      assert.equal(p.built !== undefined, k % 2 === 1);
      programs.commit(p, 4);
      assert.equal(programs.lastError, undefined);
      programs.drain();
      blocks.push(p.words.buffer);
    }
    assert.notEqual(blocks[0], blocks[1]);
    assert.deepEqual(blocks.slice(2), [blocks[0], blocks[1], blocks[0]]);
  });
});
