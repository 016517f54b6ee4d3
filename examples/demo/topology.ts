// The demo's lab: a client, a node that routes (and runs nfqwall), and three backends, each on its own link.
//
//   client 198.18.0.2   ── 198.18.0.1   node 198.19.1.1 ── 198.19.1.2 backend1
//          198.19.200.2    198.19.200.1
//                                        198.19.2.1 ── 198.19.2.2 backend2
//                                        198.19.3.1 ── 198.19.3.2 backend3
//
// The kube-proxy scenario's ClusterIP, 198.19.100.10, lives on no interface: the node DNATs it. The client's second
// address, 198.19.200.2, is outside the cluster's 198.18.0.0/16, so the kube-proxy rules MASQUERADE what it sends to
// the ClusterIP. The backends route the ClusterIP through the node too.
import type { LabSpec } from '../../test/lab/lab';

export const CLIENT = '198.18.0.2';
export const NODE_CLIENT_SIDE = '198.18.0.1';
/** The client's address outside the cluster CIDR (198.18.0.0/16): kube-proxy MASQUERADEs its service traffic. */
export const OUTSIDE_CLIENT = '198.19.200.2';
/** The node's address on the client link in that subnet. */
export const NODE_OUTSIDE_SIDE = '198.19.200.1';
/** The kube-proxy scenario's service address (examples/demo/kube-proxy.rules). */
export const CLUSTER_IP = '198.19.100.10';

export interface Backend {
  name: string;
  addr: string;
}

export const BACKENDS: readonly Backend[] = [1, 2, 3].map((n) => ({ name: `backend${n}`, addr: `198.19.${n}.2` }));

/** Ports every backend listens on; the ruleset decides which the client reaches. */
export const PORTS = { http: 80, blocked: 8080, rejected: 8443 } as const;

export function demoLabSpec(): LabSpec {
  return {
    hosts: [{ name: 'client' }, { name: 'node', forward: true }, ...BACKENDS.map((b) => ({ name: b.name }))],
    links: [
      {
        a: 'client',
        b: 'node',
        aAddr: [`${CLIENT}/24`, `${OUTSIDE_CLIENT}/24`],
        bAddr: [`${NODE_CLIENT_SIDE}/24`, `${NODE_OUTSIDE_SIDE}/24`],
      },
      ...BACKENDS.map((b, i) => ({ a: 'node', b: b.name, aAddr: [`198.19.${i + 1}.1/24`], bAddr: [`${b.addr}/24`] })),
    ],
    routes: [
      { host: 'client', to: '198.19.0.0/16', via: NODE_CLIENT_SIDE },
      ...BACKENDS.map((b, i) => ({ host: b.name, to: '198.18.0.0/24', via: `198.19.${i + 1}.1` })),
      ...BACKENDS.map((b, i) => ({ host: b.name, to: `${CLUSTER_IP}/32`, via: `198.19.${i + 1}.1` })),
    ],
  };
}
