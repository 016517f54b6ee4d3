// Every `-m NAME ...` of a part-A match in the corpus' kernel renderings (*.kernel-save, iptables-save v1.8.9 output)
// must parse and print back byte for byte: the kernel's canonical text is a fixed point of parse + format.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { MATCHES } from '../../src/extensions/index';
import type { MatchExtension } from '../../src/extensions/types';
import { parseProtocol } from '../../src/rules/services';
import { optionUses, parseCtx } from './packet-fixture';

import { CORPUS } from '../paths';
const MINE = new Set([
  'tcp', 'udp', 'icmp', 'icmp6', 'sctp', 'multiport', 'conntrack', 'state', 'addrtype', 'comment', 'mark',
  'connmark', 'statistic', 'limit', 'iprange', 'length', 'ttl', 'hl', 'pkttype', 'mac', 'physdev', 'ipvs',
]);

/** Words of a saved rule line, keeping each word's source text (quotes included) for the expected string. */
function split(line: string): { raw: string; word: string }[] {
  const out: { raw: string; word: string }[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ') i++;
    if (i >= line.length) break;
    const start = i;
    let w = '';
    while (i < line.length && line[i] !== ' ') {
      if (line[i] === '"') {
        i++;
        while (i < line.length && line[i] !== '"') {
          if (line[i] === '\\') i++;
          w += line[i++];
        }
        i++;
      } else w += line[i++];
    }
    out.push({ raw: line.slice(start, i), word: w });
  }
  return out;
}

interface Segment {
  file: string;
  line: number;
  chain: string;
  family: 4 | 6;
  proto?: { value: number; negated: boolean };
  ext: MatchExtension<unknown>;
  text: string; // as the kernel printed it
  words: string[]; // unquoted, for the fixture's option splitter
}

function segments(): Segment[] {
  const out: Segment[] = [];
  if (!fs.existsSync(CORPUS)) return out;
  for (const f of fs.readdirSync(CORPUS).filter((n) => n.endsWith('.kernel-save'))) {
    const family = /-v6\b/.test(f) ? 6 : 4;
    fs.readFileSync(path.join(CORPUS, f), 'utf8')
      .split('\n')
      .forEach((line, n) => {
        if (!line.startsWith('-A ')) return;
        const ws = split(line);
        const chain = ws[1].word;
        let proto: Segment['proto'];
        for (let i = 0; i < ws.length; i++) {
          if (ws[i].word === '-p') proto = { value: parseProtocol(ws[i + 1].word), negated: ws[i - 1]?.word === '!' };
          if (ws[i].word !== '-m' || !MINE.has(ws[i + 1]?.word ?? '')) continue;
          const ext = MATCHES.find((m) => m.name === ws[i + 1].word);
          if (!ext) continue;
          let j = i + 2;
          const part: { raw: string; word: string }[] = [];
          // Until the next core option (-m, -j, -g, or a `!` before one).
          while (j < ws.length && !/^-[mjg]$/.test(ws[j].word) && !(ws[j].word === '!' && /^-[a-z]$/.test(ws[j + 1]?.word ?? ''))) {
            part.push(ws[j]);
            j++;
          }
          out.push({
            file: f,
            line: n + 1,
            chain,
            family,
            proto,
            ext,
            text: part.map((p) => p.raw).join(' '),
            words: part.map((p) => p.word),
          });
        }
      });
  }
  return out;
}

describe('part-A matches against the corpus kernel renderings', () => {
  const segs = segments();
  it('finds the corpus and the matches it uses', () => {
    assert.ok(fs.existsSync(CORPUS), `corpus not found at ${CORPUS} (set NFQW_CORPUS)`);
    assert.ok(segs.length > 200, `only ${segs.length} segments`);
    for (const name of ['tcp', 'udp', 'conntrack', 'state', 'addrtype', 'comment', 'multiport', 'mark', 'limit', 'statistic'])
      assert.ok(segs.some((s) => s.ext.name === name), `no ${name} in the corpus`);
  });
  for (const s of segs) {
    it(`${s.file}:${s.line} -m ${s.ext.name} ${s.text}`, () => {
      // Re-quote words that held spaces so the fixture's splitter sees them as one word.
      const text = s.words.map((w) => (/[\s"]/.test(w) || w === '' ? `"${w.replace(/(["\\])/g, '\\$1')}"` : w)).join(' ');
      const ctx = parseCtx({ family: s.family, chain: s.chain, proto: s.proto?.value, protoNegated: s.proto?.negated });
      const opts = s.ext.parse(optionUses(s.ext, text), ctx);
      assert.equal(s.ext.format(opts, s.family), s.text);
    });
  }
});
