// The kernel's jhash_3words (include/linux/jhash.h, Bob Jenkins' lookup3 final mix) and reciprocal_scale, which
// NFQUEUE --queue-balance uses to pick a queue (include/net/netfilter/nf_queue.h).
function rol32(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

const JHASH_INITVAL = 0xdeadbeef;

export function jhash3words(a0: number, b0: number, c0: number, initval: number): number {
  let a = (a0 + JHASH_INITVAL + (3 << 2) + initval) >>> 0;
  let b = (b0 + JHASH_INITVAL + (3 << 2) + initval) >>> 0;
  let c = (c0 + JHASH_INITVAL + (3 << 2) + initval) >>> 0;
  // __jhash_final(a, b, c)
  c = (c ^ b) >>> 0;
  c = (c - rol32(b, 14)) >>> 0;
  a = (a ^ c) >>> 0;
  a = (a - rol32(c, 11)) >>> 0;
  b = (b ^ a) >>> 0;
  b = (b - rol32(a, 25)) >>> 0;
  c = (c ^ b) >>> 0;
  c = (c - rol32(b, 16)) >>> 0;
  a = (a ^ c) >>> 0;
  a = (a - rol32(c, 4)) >>> 0;
  b = (b ^ a) >>> 0;
  b = (b - rol32(a, 14)) >>> 0;
  c = (c ^ b) >>> 0;
  c = (c - rol32(b, 24)) >>> 0;
  return c;
}

/** (val * n) >> 32: maps a 32-bit hash onto [0, n). */
export function reciprocalScale(val: number, n: number): number {
  return Number((BigInt(val >>> 0) * BigInt(n)) >> 32n);
}

/** A 32-bit word of an address as the kernel loads it on a little-endian CPU (__force u32 of a __be32). */
export function leWord(b: Uint8Array, off: number): number {
  return (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0;
}
