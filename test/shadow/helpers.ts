// Synthetic frames for the shadow tests.
import { craftPacket, type CraftOptions } from '../../src/engine/craft';
import { parseIpAddr } from '../../src/rules/addr';
import type { Family } from '../../src/rules/model';

export const FW_MAC = Uint8Array.from([0x02, 0, 0, 0, 0, 0x01]);
export const PEER_MAC = Uint8Array.from([0x02, 0, 0, 0, 0, 0x02]);

export function ip(s: string): Uint8Array {
  const a = parseIpAddr(s, s.includes(':') ? 6 : 4);
  if (!a) throw new Error(`bad address ${s}`);
  return a;
}

export function packet(src: string, dst: string, o: Partial<CraftOptions> = {}): Uint8Array {
  const family: Family = src.includes(':') ? 6 : 4;
  return craftPacket({ family, src: ip(src), dst: ip(dst), proto: 17, sport: 40000, dport: 53, ...o });
}

export function eth(src: Uint8Array, dst: Uint8Array, l3: Uint8Array, opts: { vlan?: number; pad?: number } = {}): Uint8Array {
  const type = l3[0] >> 4 === 6 ? 0x86dd : 0x0800;
  const tag = opts.vlan === undefined ? [] : [0x81, 0x00, (opts.vlan >> 8) & 0x0f, opts.vlan & 0xff];
  return Uint8Array.from([...dst, ...src, ...tag, type >> 8, type & 0xff, ...l3, ...new Array<number>(opts.pad ?? 0).fill(0)]);
}

export function sll(pkttype: number, src: Uint8Array, l3: Uint8Array): Uint8Array {
  const type = l3[0] >> 4 === 6 ? 0x86dd : 0x0800;
  return Uint8Array.from([0, pkttype, 0, 1, 0, 6, ...src, 0, 0, type >> 8, type & 0xff, ...l3]);
}
