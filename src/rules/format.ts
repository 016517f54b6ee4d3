// The canonical text of one rule, as iptables-save (nft backend, v1.8.9) prints it after `-A CHAIN`:
// -s -d -i -o -p (nft_ipv4_save_rule / save_rule_details), -f, then each match, then the target.
import type { Family, Rule } from './model';
import { formatIpNet } from './addr';
import { protocolName } from './services';

/** Receives the text of a rule piece by piece; the pieces concatenated are formatRuleSpec's string. */
export interface TextSink {
  add(text: string): void;
}

/**
 * Writes the canonical text to `out` without building it: rule ids hash it piece by piece, which spares building
 * and flattening a string per rule when a file has 100,000 of them.
 */
export function writeRuleSpec(rule: Rule, family: Family, out: TextSink): void {
  let first = true;
  const word = (negated: boolean, flag: string): void => {
    if (!first) out.add(' ');
    first = false;
    if (negated) out.add('! ');
    out.add(flag);
  };
  if (rule.src) {
    word(rule.src.negated, '-s ');
    out.add(formatIpNet(rule.src.value));
  }
  if (rule.dst) {
    word(rule.dst.negated, '-d ');
    out.add(formatIpNet(rule.dst.value));
  }
  if (rule.inIface) {
    word(rule.inIface.negated, '-i ');
    out.add(rule.inIface.value);
  }
  if (rule.outIface) {
    word(rule.outIface.negated, '-o ');
    out.add(rule.outIface.value);
  }
  if (rule.proto && rule.proto.value > 0) {
    word(rule.proto.negated, '-p ');
    out.add(protocolName(rule.proto.value));
  }
  if (rule.fragment) word(rule.fragment.negated, '-f');
  const ms = rule.matches;
  for (let i = 0; i < ms.length; i++) {
    const m = ms[i];
    word(false, '-m ');
    out.add(m.ext.name);
    const o = m.ext.format(m.opts, family);
    if (o) {
      out.add(' ');
      out.add(o);
    }
  }
  const t = rule.target;
  if (t) {
    if (t.kind === 'chain') {
      word(false, t.goto ? '-g ' : '-j ');
      out.add(t.chain);
    } else {
      word(false, '-j ');
      out.add(t.ext.name);
      const o = t.ext.format(t.opts, family);
      if (o) {
        out.add(' ');
        out.add(o);
      }
    }
  }
}

class StringSink implements TextSink {
  text = '';
  add(text: string): void {
    this.text += text;
  }
}

export function formatRuleSpec(rule: Rule, family: Family): string {
  const sink = new StringSink();
  writeRuleSpec(rule, family, sink);
  return sink.text;
}
