// The canonical text of one rule, as iptables-save (nft backend, v1.8.9) prints it after `-A CHAIN`:
// -s -d -i -o -p (nft_ipv4_save_rule / save_rule_details), -f, then each match, then the target.
import type { Family, IpNet, Rule } from './model';
import { formatIpAddr, maskPrefixLength } from './addr';
import { protocolName } from './services';

/** Receives the text of a rule piece by piece; the pieces concatenated are formatRuleSpec's string. */
export interface TextSink {
  add(text: string): void;
}

const DECIMAL = Array.from({ length: 256 }, (_, i) => String(i));

/** formatIpNet's text in pieces: its string would be a rope, which hashing would first have to flatten. */
function writeIpNet(net: IpNet, out: TextSink): void {
  const a = net.addr;
  if (a.length === 4) {
    out.add(DECIMAL[a[0]]);
    out.add('.');
    out.add(DECIMAL[a[1]]);
    out.add('.');
    out.add(DECIMAL[a[2]]);
    out.add('.');
    out.add(DECIMAL[a[3]]);
  } else out.add(formatIpAddr(a));
  out.add('/');
  const len = maskPrefixLength(net.mask);
  out.add(len >= 0 ? DECIMAL[len] : formatIpAddr(net.mask));
}

/**
 * Writes the canonical text to `out` without building it: rule ids hash it piece by piece, which spares building
 * and flattening a string per rule when a file has 100,000 of them.
 */
export function writeRuleSpec(rule: Rule, family: Family, out: TextSink): void {
  // Whether something was written: every later word is preceded by a space.
  let more = false;
  if (rule.src) {
    out.add(rule.src.negated ? '! -s ' : '-s ');
    writeIpNet(rule.src.value, out);
    more = true;
  }
  if (rule.dst) {
    out.add(rule.dst.negated ? (more ? ' ! -d ' : '! -d ') : (more ? ' -d ' : '-d '));
    writeIpNet(rule.dst.value, out);
    more = true;
  }
  if (rule.inIface) {
    out.add(rule.inIface.negated ? (more ? ' ! -i ' : '! -i ') : (more ? ' -i ' : '-i '));
    out.add(rule.inIface.value);
    more = true;
  }
  if (rule.outIface) {
    out.add(rule.outIface.negated ? (more ? ' ! -o ' : '! -o ') : (more ? ' -o ' : '-o '));
    out.add(rule.outIface.value);
    more = true;
  }
  if (rule.proto && rule.proto.value > 0) {
    out.add(rule.proto.negated ? (more ? ' ! -p ' : '! -p ') : (more ? ' -p ' : '-p '));
    out.add(protocolName(rule.proto.value));
    more = true;
  }
  if (rule.fragment) {
    out.add(rule.fragment.negated ? (more ? ' ! -f' : '! -f') : (more ? ' -f' : '-f'));
    more = true;
  }
  const ms = rule.matches;
  for (let i = 0; i < ms.length; i++) {
    const m = ms[i];
    out.add(more ? ' -m ' : '-m ');
    out.add(m.ext.name);
    const o = m.ext.format(m.opts, family);
    if (o) {
      out.add(' ');
      out.add(o);
    }
    more = true;
  }
  const t = rule.target;
  if (t) {
    if (t.kind === 'chain') {
      out.add(t.goto ? (more ? ' -g ' : '-g ') : (more ? ' -j ' : '-j '));
      out.add(t.chain);
    } else {
      out.add(more ? ' -j ' : '-j ');
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
