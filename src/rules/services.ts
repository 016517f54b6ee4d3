// Port and protocol names as libxtables resolves them: numbers first (strtoul base 0, so 0x16 and 026 work too),
// then /etc/services (getservbyname) for ports and the kernel's list plus /etc/protocols for protocols.
import fs from 'node:fs';

/** Thrown with a reason only; callers add the location. */
export class NameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NameError';
  }
}

/** strtoumax(s, &end, 0) accepting the whole word only; undefined when not a number or out of range. */
export function parseUInt(word: string, max: number): number | undefined {
  // Fast paths for what rule files hold (every -p and port goes through here): a name, or a plain decimal number.
  const c0 = word.length > 0 ? word.charCodeAt(0) : 0;
  if ((c0 >= 97 && c0 <= 122) || (c0 >= 65 && c0 <= 90)) return undefined;
  if (c0 >= 49 && c0 <= 57 && word.length <= 9) {
    let v = 0;
    let i = 0;
    for (; i < word.length; i++) {
      const d = word.charCodeAt(i) - 48;
      if (d < 0 || d > 9) break;
      v = v * 10 + d;
    }
    if (i === word.length) return v > max ? undefined : v;
  }
  let s = word.trim();
  if (s.startsWith('+')) s = s.slice(1);
  let v: number;
  if (/^0[xX][0-9a-fA-F]+$/.test(s)) v = parseInt(s.slice(2), 16);
  else if (/^0[0-7]*$/.test(s)) v = s.length > 1 ? parseInt(s.slice(1), 8) : 0;
  else if (/^[1-9][0-9]*$/.test(s)) v = Number(s);
  else return undefined;
  if (!Number.isFinite(v) || v > max) return undefined;
  return v;
}

type ServiceTable = Map<string, Map<string, number>>; // name -> proto -> port

let services: ServiceTable | undefined;
function loadServices(): ServiceTable {
  if (services) return services;
  const t: ServiceTable = new Map();
  let text = '';
  try {
    text = fs.readFileSync('/etc/services', 'utf8');
  } catch {
    // No services database: names are refused, numbers still work.
  }
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const f = line.split(/\s+/);
    const m = /^(\d+)\/(\w+)$/.exec(f[1] ?? '');
    if (!m) continue;
    const port = Number(m[1]);
    for (const name of [f[0], ...f.slice(2)]) {
      let byProto = t.get(name);
      if (!byProto) t.set(name, (byProto = new Map()));
      if (!byProto.has(m[2])) byProto.set(m[2], port);
      if (!byProto.has('')) byProto.set('', port);
    }
  }
  services = t;
  return t;
}

/**
 * A port number or service name, as xtables_parse_port(word, proto). `proto` is the protocol name the module passes
 * (tcp, udp, sctp, dccp, udplite); absent: any protocol.
 */
export function parsePort(word: string, proto?: string): number {
  const n = parseUInt(word, 65535);
  if (n !== undefined) return n;
  const byProto = loadServices().get(word);
  const p = byProto?.get(proto ?? '');
  if (p !== undefined) return p;
  throw new NameError(`invalid port/service \`${word}' specified`);
}

/** The kernel's protocol names (libxtables xtables_chain_protos), which win over /etc/protocols. */
const KERNEL_PROTOS: ReadonlyArray<[string, number]> = [
  ['tcp', 6],
  ['sctp', 132],
  ['udp', 17],
  ['udplite', 136],
  ['icmp', 1],
  ['ipv6-icmp', 58],
  ['icmpv6', 58],
  ['esp', 50],
  ['ah', 51],
  // 1.8.9 lists mobility-header first (iptables-save prints it whatever /etc/protocols says: kernel-checked).
  ['mobility-header', 135],
  ['ipv6-mh', 135],
  ['mh', 135],
  ['all', 0],
];

let protocols: Map<string, number> | undefined;
function loadProtocols(): Map<string, number> {
  if (protocols) return protocols;
  const t = new Map<string, number>();
  let text = '';
  try {
    text = fs.readFileSync('/etc/protocols', 'utf8');
  } catch {
    // Only the kernel's list then.
  }
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const f = line.split(/\s+/);
    const num = Number(f[1]);
    if (!/^\d+$/.test(f[1] ?? '')) continue;
    for (const name of [f[0], ...f.slice(2)]) if (!t.has(name)) t.set(name, num);
  }
  for (const [name, num] of KERNEL_PROTOS) t.set(name, num);
  protocols = t;
  return t;
}

/**
 * -p's argument: a number 0-255 or a name (case-insensitive, as iptables lowercases it). Returns the number; 0 is all.
 */
export function parseProtocol(word: string): number {
  const n = parseUInt(word, 255);
  if (n !== undefined) return n;
  const p = loadProtocols().get(word.toLowerCase());
  if (p !== undefined) return p;
  throw new NameError(`unknown protocol "${word}" specified`);
}

/** The name iptables-save prints for -p (xtables_chain_protos first, then /etc/protocols), or the number. */
export function protocolName(num: number): string {
  let name = protocolNames.get(num);
  if (name === undefined) {
    name = lookUpProtocolName(num);
    protocolNames.set(num, name);
  }
  return name;
}

// Every rule's canonical text names its protocol: remember the answers.
const protocolNames = new Map<number, string>();

function lookUpProtocolName(num: number): string {
  for (const [name, n] of KERNEL_PROTOS) if (n === num && name !== 'all') return name;
  if (num === 0) return 'all';
  for (const [name, n] of loadProtocols()) if (n === num) return name;
  return String(num);
}

let servicesByPort: Map<string, string> | undefined;
/** getservbyport(port, proto): the official name of the first /etc/services line for port/proto, or undefined. */
export function serviceName(port: number, proto: string): string | undefined {
  if (!servicesByPort) {
    servicesByPort = new Map();
    let text = '';
    try {
      text = fs.readFileSync('/etc/services', 'utf8');
    } catch {
      // No services database: ports print as numbers.
    }
    for (const raw of text.split('\n')) {
      const f = raw.replace(/#.*/, '').trim().split(/\s+/);
      if (f.length < 2 || !/^\d+\/\w+$/.test(f[1])) continue;
      if (!servicesByPort.has(f[1])) servicesByPort.set(f[1], f[0]);
    }
  }
  return servicesByPort.get(`${port}/${proto}`);
}
