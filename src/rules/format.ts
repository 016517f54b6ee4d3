// The canonical text of one rule, as iptables-save (nft backend, v1.8.9) prints it after `-A CHAIN`:
// -s -d -i -o -p (nft_ipv4_save_rule / save_rule_details), -f, then each match, then the target.
import type { Family, Rule } from './model';
import { formatIpNet } from './addr';
import { protocolName } from './services';

export function formatRuleSpec(rule: Rule, family: Family): string {
  let s = '';
  if (rule.src) s += `${rule.src.negated ? ' !' : ''} -s ${formatIpNet(rule.src.value)}`;
  if (rule.dst) s += `${rule.dst.negated ? ' !' : ''} -d ${formatIpNet(rule.dst.value)}`;
  if (rule.inIface) s += `${rule.inIface.negated ? ' !' : ''} -i ${rule.inIface.value}`;
  if (rule.outIface) s += `${rule.outIface.negated ? ' !' : ''} -o ${rule.outIface.value}`;
  if (rule.proto && rule.proto.value > 0) s += `${rule.proto.negated ? ' !' : ''} -p ${protocolName(rule.proto.value)}`;
  if (rule.fragment) s += `${rule.fragment.negated ? ' !' : ''} -f`;
  for (const m of rule.matches) {
    const o = m.ext.format(m.opts, family);
    s += o ? ` -m ${m.ext.name} ${o}` : ` -m ${m.ext.name}`;
  }
  const t = rule.target;
  if (t) {
    if (t.kind === 'chain') s += ` -${t.goto ? 'g' : 'j'} ${t.chain}`;
    else {
      const o = t.ext.format(t.opts, family);
      s += o ? ` -j ${t.ext.name} ${o}` : ` -j ${t.ext.name}`;
    }
  }
  return s.length > 0 ? s.slice(1) : s;
}
