// The demo's lab: a client, a node that routes (and runs nfqwall), and three backends, each on its own link.
//
//   client 198.18.0.2   ── 198.18.0.1   node 198.19.1.1 ── 198.19.1.2 backend1
//          198.19.200.2    198.19.200.1
//                                        198.19.2.1 ── 198.19.2.2 backend2
//                                        198.19.3.1 ── 198.19.3.2 backend3
//                                        198.19.4.1 ── 198.19.4.2 backend4 (idle until the service scales to four)
//
// The kube-proxy scenario's ClusterIP, 198.19.100.10, lives on no interface: the node DNATs it. The client's second
// address, 198.19.200.2, is outside the cluster's 198.18.0.0/16, so the kube-proxy rules MASQUERADE what it sends to
// the ClusterIP. The backends route the ClusterIP through the node too. The node routes the rest of the service range
// 198.19.100.0/24 towards backend1, as a node's default route would: a service address that nothing DNATs (the
// service with no endpoints) reaches the FORWARD hook, where kube-proxy's REJECT rule answers it.
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
/** The fourth backend, serving from the start but in no rule until the demo scales the service to four. */
export const SPARE: Backend = { name: 'backend4', addr: '198.19.4.2' };
const ALL_BACKENDS: readonly Backend[] = [...BACKENDS, SPARE];

/** kube-proxy.rules: a NodePort of the ClusterIP service on the node's own addresses. */
export const NODE_PORT = 30080;
/** kube-proxy.rules: a service with no endpoints, which kube-proxy REJECTs. */
export const EMPTY_SERVICE_IP = '198.19.100.11';

/** Ports every backend listens on; the ruleset decides which the client reaches. */
export const PORTS = { http: 80, blocked: 8080, rejected: 8443 } as const;

export function demoLabSpec(): LabSpec {
  return {
    hosts: [{ name: 'client' }, { name: 'node', forward: true }, ...ALL_BACKENDS.map((b) => ({ name: b.name }))],
    links: [
      {
        a: 'client',
        b: 'node',
        aAddr: [`${CLIENT}/24`, `${OUTSIDE_CLIENT}/24`],
        bAddr: [`${NODE_CLIENT_SIDE}/24`, `${NODE_OUTSIDE_SIDE}/24`],
      },
      ...ALL_BACKENDS.map((b, i) => ({ a: 'node', b: b.name, aAddr: [`198.19.${i + 1}.1/24`], bAddr: [`${b.addr}/24`] })),
    ],
    routes: [
      { host: 'client', to: '198.19.0.0/16', via: NODE_CLIENT_SIDE },
      { host: 'node', to: '198.19.100.0/24', via: BACKENDS[0]!.addr },
      ...ALL_BACKENDS.map((b, i) => ({ host: b.name, to: '198.18.0.0/24', via: `198.19.${i + 1}.1` })),
      ...ALL_BACKENDS.map((b, i) => ({ host: b.name, to: `${CLUSTER_IP}/32`, via: `198.19.${i + 1}.1` })),
    ],
  };
}
