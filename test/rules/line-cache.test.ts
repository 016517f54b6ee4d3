// A parse that reuses an earlier parse of the same file (src/rules/line-cache.ts) must give exactly what a parse from
// nothing gives: the same Ruleset, locations included, and the same errors naming the same lines.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { kubeProxyRules } from '../../bench/parse';
import { RuleErrors } from '../../src/rules/errors';
import { ParseCache } from '../../src/rules/line-cache';
import { lastParseStats, loadRuleFile } from '../../src/rules/load';
import type { Family, Ruleset } from '../../src/rules/model';
import { parseRuleset } from '../../src/rules/parse';
import { zeroCounters } from '../../src/rules/counters';
import { Rng } from '../rng';
import { CORPUS } from '../paths';

type Outcome = { ok: true; rs: Ruleset } | { ok: false; errors: string[] };

function outcome(text: string, file: string, family: Family, cache?: ParseCache): Outcome {
  try {
    return { ok: true, rs: parseRuleset(text, file, cache ? { family, cache } : { family }) };
  } catch (e) {
    if (!(e instanceof RuleErrors)) throw e;
    return { ok: false, errors: e.errors.map((x) => x.message) };
  }
}

/** Parses `text` with `cache` and from nothing, and asserts both give the same. */
function sameAsCold(text: string, cache: ParseCache, file = 'test.rules', family: Family = 4): Outcome {
  const warm = outcome(text, file, family, cache);
  const cold = outcome(text, file, family);
  assert.deepStrictEqual(warm, cold);
  return warm;
}

function ruleset(o: Outcome): Ruleset {
  if (!o.ok) assert.fail(`expected the file to parse: ${o.errors.join('\n')}`);
  return o.rs;
}

function errors(o: Outcome): string[] {
  if (o.ok) assert.fail('expected the file to be refused');
  return o.errors;
}

/** The 1-based line of the first line of `text` equal to `line`. */
function lineOf(text: string, line: string): number {
  const k = text.split('\n').indexOf(line);
  assert.ok(k >= 0, `no line ${line}`);
  return k + 1;
}

const FILTER = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:web - [0:0]
:ssh - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p tcp -m tcp --dport 80 -j web
-A INPUT -p tcp -m tcp --dport 22 -j ssh
-A INPUT -s 10.0.0.1,10.0.0.2 -p udp -m udp --dport 53 -j ACCEPT
-A web -m limit --limit 10/sec -j ACCEPT
-A web -j DROP
-A ssh -s 192.0.2.0/24 -j ACCEPT
-A ssh -j REJECT --reject-with tcp-reset -p tcp
-A OUTPUT -o eth0 -j ACCEPT
COMMIT
`;

describe('rules/line-cache: a reparse reusing the last one', () => {
  it('after one changed line gives exactly the cold parse of the new file, locations included', () => {
    const cache = new ParseCache();
    const before = kubeProxyRules(40, 3);
    sameAsCold(before, cache);
    const old = '-A KUBE-SEP-0000000000000007 -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.0.0.7:80';
    const changed = old.replace(':80', ':8080');
    const after = before.replace(old, changed);
    assert.notEqual(after, before);
    const rs = ruleset(sameAsCold(after, cache));
    const rules = before.split('\n').filter((l) => l.startsWith('-A ')).length;
    const userChains = before.split('\n').filter((l) => / - \[0:0\]$/.test(l)).length;
    assert.deepEqual(cache.stats, { reused: rules - 1, moved: 0, parsed: 1, sharedChains: 0, validatedByChanges: 1, declsReused: userChains });
    const sep = rs.tables.get('nat')?.chains.get('KUBE-SEP-0000000000000007')?.rules[1];
    assert.ok(sep?.target?.kind === 'extension');
    assert.equal(sep.loc.line, lineOf(after, changed));
    assert.equal(sep.target.loc.line, lineOf(after, changed));
  });

  it('gives lines that moved the locations of their new line', () => {
    const cache = new ParseCache();
    sameAsCold(FILTER, cache);
    const moved = FILTER.replace(':ssh - [0:0]\n', ':ssh - [0:0]\n# added\n\n-A INPUT -p icmp -j ACCEPT\n');
    const rs = ruleset(sameAsCold(moved, cache));
    assert.equal(cache.stats.parsed, 1);
    assert.equal(cache.stats.moved, cache.stats.reused);
    const web = rs.tables.get('filter')?.chains.get('web')?.rules[0];
    const line = lineOf(moved, '-A web -m limit --limit 10/sec -j ACCEPT');
    assert.equal(web?.loc.line, line);
    assert.equal(web?.matches[0]?.loc.line, line);
    assert.equal(web?.matches[0]?.loc.column, 11);
    // The two rules of `-s a,b` share their matches as a parse from nothing makes them share them.
    const dns = rs.tables.get('filter')?.chains.get('INPUT')?.rules.slice(5, 7);
    assert.equal(dns?.length, 2);
    assert.equal(dns[0].matches, dns[1].matches);
    assert.notEqual(dns[0].counters, dns[1].counters);
  });

  it('names the new line of an unchanged rule line whose chain is gone', () => {
    const cache = new ParseCache();
    sameAsCold(FILTER, cache);
    const broken = `# v2\n${FILTER.replace(':ssh - [0:0]\n', '')}`;
    const line = lineOf(broken, '-A ssh -s 192.0.2.0/24 -j ACCEPT');
    const errs = errors(sameAsCold(broken, cache));
    assert.ok(errs.includes(`test.rules:${line}:4: chain "ssh" does not exist in table filter`), errs.join('\n'));
    // The jump to it, unchanged but moved, is refused at its new place too.
    const jump = lineOf(broken, '-A INPUT -p tcp -m tcp --dport 22 -j ssh');
    assert.ok(errs.some((e) => e.startsWith(`test.rules:${jump}:`)), errs.join('\n'));
  });

  it('still refuses a loop, a vanished chain, a built-in target and a newly reached hook that a changed line brings', () => {
    const nat = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
:X - [0:0]
:Y - [0:0]
:Z - [0:0]
-A POSTROUTING -j Z
-A Z -j MASQUERADE
-A PREROUTING -j A
-A A -j B
-A PREROUTING -j X
-A X -j Y
-A Y -p tcp -j DNAT --to-destination 192.0.2.1
COMMIT
`;
    const cache = new ParseCache();
    // Each bad version right after a good one, so it is checked by its changes first.
    const refusedAfterGood = (bad: string): string[] => {
      sameAsCold(nat, cache);
      return errors(sameAsCold(bad, cache));
    };
    // Whether the first error names `line` of `bad`, and says `what`.
    const refusedAt = (bad: string, line: string, what: RegExp): void => {
      const errs = refusedAfterGood(bad);
      assert.ok(errs[0].startsWith(`test.rules:${lineOf(bad, line)}:`), errs[0]);
      assert.match(errs[0], what);
    };
    // Every rule line is one of the validated version's: only the missing chain tells.
    refusedAt(nat.replace(':B - [0:0]\n', ''), '-A A -j B', /unknown target or chain "B"/);
    refusedAt(nat.replace('-A A -j B\n', '-A A -j B\n-A B -j A\n'), '-A B -j A', /loop among chains: A -> B -> A/);
    refusedAt(nat.replace('-A A -j B\n', '-A A -j B\n-A B -j B\n'), '-A B -j B', /loop among chains: B -> B/);
    refusedAt(nat.replace('-A A -j B\n', '-A A -j B\n-A B -j OUTPUT\n'), '-A B -j OUTPUT', /cannot jump to built-in chain "OUTPUT"/);
    // DNAT two jumps down from the new one: the hook is carried to Y, whose unchanged rule is checked again.
    const dnat = '-A Y -p tcp -j DNAT --to-destination 192.0.2.1';
    refusedAt(nat.replace('-A PREROUTING -j X\n', '-A PREROUTING -j X\n-A POSTROUTING -j X\n'), dnat, /target DNAT used from hook POSTROUTING/);
    // A new rule in a chain reached from the wrong hook by a new jump.
    const b = '-A B -j DNAT --to-destination 192.0.2.2';
    refusedAt(nat.replace('-A A -j B\n', `-A A -j B\n-A POSTROUTING -j B\n${b}\n`), b, /target DNAT used from hook POSTROUTING/);
    // A new rule in a chain whose hooks did not change.
    const z = '-A Z -p tcp -j DNAT --to-destination 192.0.2.3';
    refusedAt(nat.replace('-A Z -j MASQUERADE\n', `-A Z -j MASQUERADE\n${z}\n`), z, /target DNAT used from hook POSTROUTING/);
    sameAsCold(nat, cache);
    // And what passes, passes by its changes.
    sameAsCold(nat.replace('-A A -j B\n', '-A A -j B\n-A OUTPUT -j B\n-A B -j DNAT --to-destination 192.0.2.2\n'), cache);
    assert.equal(cache.stats.validatedByChanges, 1);
  });

  it('validates a table by its changes only against the last version that passed and was built by -A alone', () => {
    const cache = new ParseCache();
    sameAsCold(FILTER, cache);
    assert.equal(cache.stats.validatedByChanges, 0);
    // Fewer lines, in another order: checked by its changes.
    const subset = FILTER.replace('-A web -j DROP\n', '').replace('-A INPUT -i lo -j ACCEPT\n', '').replace('-A OUTPUT -o eth0 -j ACCEPT\n', '');
    const reordered = subset.replace('-A ssh -s 192.0.2.0/24 -j ACCEPT\n', '').replace('COMMIT', '-A ssh -s 192.0.2.0/24 -j ACCEPT\nCOMMIT');
    sameAsCold(reordered, cache);
    assert.equal(cache.stats.validatedByChanges, 1);
    sameAsCold(FILTER, cache);
    assert.equal(cache.stats.validatedByChanges, 1);
    // An empty chain declared and deleted, as kube-proxy deletes its stale chains: still by its changes.
    sameAsCold(FILTER.replace(':ssh - [0:0]\n', ':ssh - [0:0]\n:stale - [0:0]\n').replace('COMMIT', '-X stale\nCOMMIT'), cache);
    assert.equal(cache.stats.validatedByChanges, 1);
    sameAsCold(FILTER, cache);
    assert.equal(cache.stats.validatedByChanges, 1);
    // A chain with rules deleted: checked whole.
    sameAsCold(FILTER.replace(':ssh - [0:0]\n', ':ssh - [0:0]\n:stale - [0:0]\n-A stale -j ACCEPT\n').replace('COMMIT', '-X stale\nCOMMIT'), cache);
    assert.equal(cache.stats.validatedByChanges, 0);
    sameAsCold(FILTER, cache);
    assert.equal(cache.stats.validatedByChanges, 0);
    // A flushing re-declaration: checked whole, and no version to check the next one against.
    sameAsCold(FILTER.replace('COMMIT', ':web - [0:0]\nCOMMIT'), cache);
    assert.equal(cache.stats.validatedByChanges, 0);
    sameAsCold(FILTER, cache);
    assert.equal(cache.stats.validatedByChanges, 0);
    sameAsCold(FILTER, cache);
    assert.equal(cache.stats.validatedByChanges, 1);
    // A refused version is no version to check against either.
    errors(sameAsCold(FILTER.replace('-j web', '-j nowhere'), cache));
    sameAsCold(FILTER, cache);
    assert.equal(cache.stats.validatedByChanges, 0);
  });

  it('copies chain declarations only where a parse from nothing would make a new chain of them', () => {
    const cache = new ParseCache();
    const decl = ':web - [0:0]\n';
    const variants = [
      FILTER,
      // Declared twice (the second flushes), in the same table written twice, after -N, after -X.
      FILTER.replace(decl, `${decl}${decl}`),
      FILTER.replace('-A web -j DROP\n', `-A web -j DROP\n${decl}-A web -j ACCEPT\n`),
      `${FILTER}*filter\n${decl}-A web -j DROP\nCOMMIT\n`,
      FILTER.replace(decl, `-N web\n${decl}`),
      FILTER.replace(decl, '').replace('COMMIT', `-X ssh\n${decl}-A web -j ACCEPT\nCOMMIT`),
      FILTER.replace('COMMIT', `-E web www\n${decl}-A web -j ACCEPT\nCOMMIT`),
      // A rule line of a deleted chain: refused, though its chain was declared by a line copied.
      FILTER.replace(decl, `${decl}:stale - [0:0]\n`).replace('COMMIT', '-A stale -j ACCEPT\nCOMMIT'),
      FILTER.replace(decl, `${decl}:stale - [0:0]\n`).replace('COMMIT', '-X stale\n-A stale -j ACCEPT\nCOMMIT'),
      // Moved, spelt with a space after the colon, with CRs, with other counters, as a built-in chain's policy.
      `# moved\n${FILTER}`,
      FILTER.replace(decl, ': web - [0:0]\n'),
      FILTER.replace(/\n/g, '\r\n'),
      FILTER.replace(decl, ':web - [3:4]\n'),
      FILTER.replace(':INPUT ACCEPT [0:0]\n', ':INPUT - [0:0]\n'),
      FILTER.replace(decl, ':web ACCEPT [0:0]\n'),
    ];
    let reused = 0;
    for (let round = 0; round < 3; round++)
      for (const v of variants) {
        const o = sameAsCold(v, cache);
        reused += cache.stats.declsReused;
        if (v.includes('-X stale\n-A stale')) assert.match(errors(o)[0], /chain "stale" does not exist in table filter/);
      }
    assert.ok(reused > 20, `${reused} declarations copied`);
  });

  it('finds the shared lines again after a long run of new ones', () => {
    const cache = new ParseCache();
    const base = kubeProxyRules(100, 3);
    sameAsCold(base, cache);
    const rules = base.split('\n').filter((l) => l.startsWith('-A ')).length;
    // 300 new lines (every later line moves by 301), then the file as it was.
    const fresh = Array.from({ length: 300 }, (_, k) => `-A KUBE-NEW -s 198.18.${k >> 8}.${k & 255}/32 -j ACCEPT`);
    const grown = base.replace('\n-A ', `\n:KUBE-NEW - [0:0]\n${fresh.join('\n')}\n-A `);
    sameAsCold(grown, cache);
    assert.equal(cache.stats.parsed, 300 + (rules - cache.stats.reused));
    // Lines are looked up one in eight after the run of misses: at most seven shared ones are parsed before one is found.
    assert.ok(cache.stats.reused >= rules - 7, `${cache.stats.reused} of ${rules} reused`);
    assert.equal(cache.stats.moved, cache.stats.reused);
  });

  it('gives the same as a cold parse through 300 random edits, good files and bad', () => {
    const rng = new Rng(6);
    // With a chain that only jumps reach: deleting its declaration breaks only them.
    const filter = FILTER.replace(':ssh - [0:0]\n', ':ssh - [0:0]\n:empty - [0:0]\n-A FORWARD -j empty\n');
    const base = `${filter}${kubeProxyRules(12, 2)}`.split('\n');
    const cache = new ParseCache();
    let lines = [...base];
    let refused = 0;
    let skipped = 0;
    let moved = 0;
    for (let round = 0; round < 300; round++) {
      const k = rng.int(0, lines.length - 1);
      const j = rng.int(0, lines.length - 1);
      switch (rng.int(0, 6)) {
        case 0:
          lines.splice(k, 1);
          break;
        case 1:
          lines.splice(j, 0, lines[k] ?? '');
          break;
        case 2:
          lines.splice(k, 0, rng.chance(0.5) ? '' : `# round ${round}`);
          break;
        case 3:
          lines[k] = (lines[k] ?? '').replace(/\d+/, String(rng.int(0, 99)));
          break;
        case 4: {
          const t = lines[k];
          lines[k] = lines[j];
          lines[j] = t;
          break;
        }
        case 5:
          lines[k] = `  ${lines[k]}`;
          break;
        default:
          if (rng.chance(0.3)) lines = [...base];
      }
      if (!sameAsCold(lines.join('\n'), cache).ok) refused++;
      skipped += cache.stats.validatedByChanges;
      moved += cache.stats.moved;
    }
    assert.ok(skipped > 0 && moved > 0, `validations skipped ${skipped}, lines moved ${moved}`);
    // Both kinds were met (the edits break a file about half the time).
    assert.ok(refused > 20 && refused < 280, `refused ${refused} of 300`);
  });

  it('gives the same as a cold parse for every corpus file reparsed with its lines moved', () => {
    const files = fs.readdirSync(CORPUS).filter((f) => f.endsWith('.rules'));
    assert.ok(files.length > 20, `corpus not found at ${CORPUS}`);
    for (const f of files) {
      const text = fs.readFileSync(path.join(CORPUS, f), 'utf8');
      const family: Family = /-v6\.rules$/.test(f) ? 6 : 4;
      const cache = new ParseCache();
      sameAsCold(text, cache, f, family);
      sameAsCold(`# moved\n\n${text}`, cache, f, family);
      sameAsCold(text.split('\n').reverse().join('\n'), cache, f, family);
      sameAsCold(text, cache, f, family);
    }
  });

  it('keeps no earlier version of the file alive', () => {
    // A rule read from a version keeps its strings for as long as the cache holds it: slices of the version's text
    // would keep all of that text alive, one whole file per reload.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const cache = new ParseCache();
    let rs = parseRuleset(kubeProxyRules(1000, 3), 'f', { family: 4, cache });
    gc();
    gc();
    const before = process.memoryUsage().heapUsed;
    const versions = 20;
    let textBytes = 0;
    for (let k = 0; k < versions; k++) {
      const text = kubeProxyRules(1000, 3, { replaced: new Set([k * 7, k * 11 + 1]) });
      textBytes += text.length;
      rs = parseRuleset(text, 'f', { family: 4, cache });
    }
    gc();
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    assert.ok(rs.tables.has('nat'));
    assert.ok(grown < textBytes / 4, `heap grew ${grown} bytes over ${versions} versions of ${textBytes / versions} bytes`);
  });

  it('keeps no chain of an earlier version alive once a file renamed every chain', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const cache = new ParseCache();
    let rs: Ruleset | undefined = parseRuleset(kubeProxyRules(1000, 3), 'f', { family: 4, cache });
    const chains = [...rs.tables.get('nat')!.chains.values()];
    const first = new WeakRef(chains[chains.length - 1]);
    chains.length = 0;
    rs = parseRuleset(kubeProxyRules(1000, 3, { salt: 1 }), 'f', { family: 4, cache });
    assert.ok(rs.tables.has('nat'));
    rs = undefined;
    // A WeakRef holds its target until the job that made it ends.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    gc();
    assert.equal(first.deref(), undefined, 'a chain of the first version is still reachable');
  });

  it('is not changed by a rename, a -Z or traffic in the rules it made', () => {
    const cache = new ParseCache();
    const renamed = FILTER.replace('COMMIT', '-E web www\nCOMMIT');
    for (const text of [FILTER, renamed, FILTER, renamed, renamed, `# again\n${FILTER}`]) ruleset(sameAsCold(text, cache));
    // A table left open after a rename: refused, and what the cache holds is still as parsed.
    errors(sameAsCold(renamed.replace('COMMIT\n', ''), cache));
    sameAsCold(FILTER, cache);
    // Counters the rules counted, and -Z, reach no later parse.
    const rs = ruleset(sameAsCold(FILTER.replace('COMMIT', '-Z INPUT\nCOMMIT'), cache));
    for (const c of rs.tables.get('filter')?.chains.values() ?? []) for (const r of c.rules) r.counters.packets += 5;
    const kept = '[3:30] -A web -j DROP';
    sameAsCold(FILTER.replace('-A web -j DROP', kept), cache);
    const again = ruleset(sameAsCold(FILTER.replace('-A web -j DROP', kept), cache));
    assert.deepEqual(again.tables.get('filter')?.chains.get('web')?.rules[1]?.counters, { packets: 3, bytes: 30 });
  });

  it('forgets everything when the file name, family or registry changes', () => {
    const cache = new ParseCache();
    sameAsCold(FILTER, cache, 'a.rules');
    sameAsCold(FILTER, cache, 'b.rules');
    assert.equal(cache.stats.reused, 0);
    sameAsCold(FILTER.replace(/10\.0\.0\.\d/g, '2001:db8::1').replace('192.0.2.0/24', '2001:db8::/32').replace('tcp-reset', 'tcp-reset'), cache, 'b.rules', 6);
    assert.equal(cache.stats.reused, 0);
  });
});

describe('rules/parse: zeroCounters', () => {
  const withCounters = `*filter
:INPUT DROP [7:700]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [3:300]
:user - [0:0]
[5:500] -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -c 9 900 -j user
-A user -s 10.0.0.1,10.0.0.2 -j ACCEPT
-P OUTPUT DROP -c 4 400
COMMIT
`;
  const zeroed = (text: string): Ruleset => {
    const rs = parseRuleset(text, 'c.rules', { family: 4 });
    zeroCounters([rs]);
    return rs;
  };

  it('gives what zeroing every counter after the parse gives, with a cache or without', () => {
    assert.ok(parseRuleset(withCounters, 'c.rules', { family: 4 }).tables.get('filter')?.chains.get('INPUT')?.rules[0]?.counters.packets === 5);
    assert.deepStrictEqual(parseRuleset(withCounters, 'c.rules', { family: 4, zeroCounters: true }), zeroed(withCounters));
    const cache = new ParseCache();
    for (const text of [withCounters, `\n${withCounters}`, withCounters]) {
      assert.deepStrictEqual(parseRuleset(text, 'c.rules', { family: 4, cache, zeroCounters: true }), zeroed(text));
      // The same cache, the counters kept: everything parsed again, nothing zeroed.
      assert.deepStrictEqual(parseRuleset(text, 'c.rules', { family: 4, cache }), parseRuleset(text, 'c.rules', { family: 4 }));
      assert.equal(cache.stats.reused, 0);
    }
  });
});

describe('rules/load: rule files reread', () => {
  it('reuses the last read of the same file, with the result of a first read', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-linecache-'));
    try {
      const file = path.join(dir, 'rules');
      fs.writeFileSync(file, FILTER);
      loadRuleFile(file, 4);
      assert.equal(lastParseStats(file)?.reused, 0);
      const changed = `\n${FILTER.replace('--dport 80', '--dport 8080')}`;
      fs.writeFileSync(file, changed);
      const warm = loadRuleFile(file, 4);
      assert.equal(lastParseStats(file)?.parsed, 1);
      assert.ok((lastParseStats(file)?.reused ?? 0) > 5);
      assert.deepStrictEqual(warm, parseRuleset(changed, file, { family: 4 }));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
