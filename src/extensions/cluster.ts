// -m cluster: which cluster node owns the connection, by a hash of its source (xt_cluster).
import type { MatchExtension } from './types';
import { RuleError } from './types';
import { exclusive, fail, find, uintArg } from './util/b-opts';

export interface ClusterOptions {
  totalNodes: number;
  nodeMask: number;
  hashSeed: number;
  invert: boolean;
}

const NODES_MAX = 32; // XT_CLUSTER_NODES_MAX

function hex8(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

const cluster: MatchExtension<ClusterOptions> = {
  kind: 'match',
  name: 'cluster',
  options: [
    { name: 'cluster-total-nodes', args: 1 },
    { name: 'cluster-local-node', args: 1, invertible: true },
    { name: 'cluster-local-nodemask', args: 1, invertible: true },
    { name: 'cluster-hash-seed', args: 1 },
  ],
  unsupported:
    'cluster: needs the conntrack master tuple hashed as the kernel hashes it, which nfqwall does not reproduce',
  parse(uses, ctx) {
    exclusive(uses, ['cluster-local-node', 'cluster-local-nodemask'], 'cluster');
    const o: ClusterOptions = { totalNodes: 0, nodeMask: 0, hashSeed: 0, invert: false };
    let node = 0;
    for (const u of uses) {
      if (u.name === 'cluster-total-nodes') o.totalNodes = uintArg(u, 0, NODES_MAX, 'cluster');
      else if (u.name === 'cluster-local-node') {
        node = uintArg(u, 1, NODES_MAX, 'cluster');
        o.nodeMask = (1 << (node - 1)) >>> 0;
        o.invert = u.negated;
      } else if (u.name === 'cluster-local-nodemask') {
        o.nodeMask = uintArg(u, 1, 0xffffffff, 'cluster');
        o.invert = u.negated;
      } else o.hashSeed = uintArg(u, 0, 0xffffffff, 'cluster');
    }
    for (const n of ['cluster-total-nodes', 'cluster-hash-seed']) {
      if (!find(uses, n)) throw new RuleError(`cluster: option "--${n}" must be specified`, ctx.loc);
    }
    const nodeUse = find(uses, 'cluster-local-node') ?? find(uses, 'cluster-local-nodemask');
    if (!nodeUse)
      throw new RuleError(
        'cluster: option "--cluster-local-node" or "--cluster-local-nodemask" must be specified',
        ctx.loc,
      );
    if (node > o.totalNodes) fail(nodeUse, "cluster match: `--cluster-local-node' must be <= `--cluster-total-nodes'");
    if (o.nodeMask >= 2 ** o.totalNodes) {
      fail(
        nodeUse,
        'cluster: node mask cannot exceed the number of nodes (the kernel refuses this rule: Invalid argument)',
      );
    }
    return o;
  },
  format(o) {
    return `${o.invert ? '! ' : ''}--cluster-local-nodemask ${hex8(o.nodeMask)} --cluster-total-nodes ${o.totalNodes} --cluster-hash-seed ${hex8(o.hashSeed)}`;
  },
};

export default cluster;
