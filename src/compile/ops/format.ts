// The word format shared by src/compile/program.ts and native/matcher.cc (docs/matcher.md, "Program format"). Change
// one side, change the other and bump VERSION: the loader refuses a version it does not know.
export const MAGIC = 0x4d51464e;
export const VERSION = 2;
/** "No such value" in a word: no policy counter, no protocol or port key. */
export const NONE = 0xffffffff;

/** Table ids, in HOOK_TABLES's names. */
export const TABLE_ID = { raw: 0, mangle: 1, nat: 2, filter: 3, security: 4 } as const;

/** Rule base flags. */
export const F_SRC = 1 << 0;
export const F_SRC_NEG = 1 << 1;
export const F_DST = 1 << 2;
export const F_DST_NEG = 1 << 3;
export const F_IN = 1 << 4;
export const F_IN_NEG = 1 << 5;
export const F_IN_PLUS = 1 << 6;
export const F_OUT = 1 << 7;
export const F_OUT_NEG = 1 << 8;
export const F_OUT_PLUS = 1 << 9;
export const F_PROTO = 1 << 10;
export const F_PROTO_NEG = 1 << 11;
export const F_FRAG = 1 << 12;
export const F_FRAG_NEG = 1 << 13;
/** The base cannot be evaluated natively (an interface name of 16 bytes or more): the rule is slow when reached. */
export const F_SLOW = 1 << 14;
export const F_ALL = (1 << 15) - 1;

/** Match opcodes; an op is [opcode, payload length, payload...]. */
export const OP = {
  SLOW: 0,
  TCP: 1,
  UDP: 2,
  MULTIPORT: 3,
  MARK: 4,
  CONNMARK: 5,
  CONNTRACK: 6,
  STATE: 7,
  ICMP: 8,
  IPRANGE: 9,
  ADDRTYPE: 10,
  TTL: 11,
  RT: 12,
  PHYSDEV: 13,
  /** statistic --mode random: [probability (lround(2^31 p)), invert]; one draw of Input::random31 per evaluation. */
  STATISTIC: 14,
} as const;

/** Or'ed into an opcode or a target kind: evaluating it makes the decision not flow-stable (engine.ts flowInfo). */
export const OP_UNSTABLE = 0x10000;

/** Target kinds; a target is [kind, a, b]. */
export const T = {
  NONE: 0,
  ACCEPT: 1,
  DROP: 2,
  RETURN: 3,
  JUMP: 4,
  GOTO: 5,
  MARK: 6,
  QUEUE: 7,
  SLOW: 8,
  /** [NAT, how (NAT_KIND), NAT_WORDS, request...]: see natWords in src/compile/ops/nat.ts. */
  NAT: 9,
} as const;

/** T.NAT's a: how the request's address is found at run time. */
export const NAT_KIND = { RANGE: 0, MASQUERADE: 1, REDIRECT: 2 } as const;
/** T.NAT's b: the request's words [manip (0 SRC, 1 DST, 2 by hook), flags, minAddr x4, maxAddr x4, minPort, maxPort, basePort]. */
export const NAT_WORDS = 13;
/** NF_NAT_RANGE_* (native/nat.h). */
export const NAT_FLAG = { MAP_IPS: 1, PROTO_SPECIFIED: 2, PROTO_RANDOM: 4, PERSISTENT: 8, PROTO_RANDOM_FULLY: 16, PROTO_OFFSET: 32, NETMAP: 64 } as const;

/** State bits of the conntrack/state ops. */
export const ST = { INVALID: 1, NEW: 2, RELATED: 4, ESTABLISHED: 8, UNTRACKED: 16, SNAT: 32, DNAT: 64 } as const;

/** An address as 4 big-endian words (IPv4 in the first). */
export function addrWords(a: Uint8Array): number[] {
  const w = [0, 0, 0, 0];
  for (let i = 0; i < a.length && i < 16; i++) w[i >> 2] = (w[i >> 2] | (a[i] << (24 - 8 * (i & 3)))) >>> 0;
  return w;
}
