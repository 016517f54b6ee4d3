// Capture files for `nfqwall shadow --read`: classic pcap (both byte orders, micro- and nanosecond stamps) and
// pcapng (section, interface and enhanced/simple packet blocks; other blocks are skipped). Written here rather than
// taken from npm: pcap-parser and pcapng-parser are stream-based, unmaintained for years and untyped, and the
// formats are small. Records are read one at a time from a file descriptor, so a large file costs one record of memory.
import fs from 'node:fs';

/** LINKTYPE_* values (https://www.tcpdump.org/linktypes.html) the shadow knows how to strip. */
export const LINKTYPE = {
  NULL: 0,
  ETHERNET: 1,
  RAW: 101,
  LINUX_SLL: 113,
  IPV4: 228,
  IPV6: 229,
  LINUX_SLL2: 276,
} as const;

export interface CaptureRecord {
  linktype: number;
  /** Seconds since the epoch. */
  time: number;
  /** The captured bytes (may be fewer than origLength). */
  data: Uint8Array;
  origLength: number;
  /** pcapng interface name (if_name), when the file has one. */
  iface?: string;
  /** pcapng epb_flags direction, when recorded. */
  direction?: 'in' | 'out';
}

export class CaptureFormatError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} (at byte ${offset})`);
  }
}

/** Exact-length reads from a file or a buffer. */
export interface ByteSource {
  /** Exactly n bytes, or undefined at a clean end of input; throws on a partial read. */
  read(n: number): Uint8Array | undefined;
  readonly offset: number;
}

export class BufferSource implements ByteSource {
  offset = 0;
  constructor(private readonly buf: Uint8Array) {}
  read(n: number): Uint8Array | undefined {
    if (this.offset === this.buf.length && n > 0) return undefined;
    if (this.offset + n > this.buf.length) throw new CaptureFormatError(`file ends inside a ${n}-byte read`, this.offset);
    const out = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }
}

export class FileSource implements ByteSource {
  offset = 0;
  constructor(private readonly fd: number) {}
  read(n: number): Uint8Array | undefined {
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const r = fs.readSync(this.fd, out, got, n - got, null);
      if (r === 0) break;
      got += r;
    }
    if (got === 0 && n > 0) return undefined;
    if (got < n) throw new CaptureFormatError(`file ends inside a ${n}-byte read`, this.offset + got);
    this.offset += n;
    return out;
  }
}

/** A record larger than this is a corrupt length field, not a packet. */
const MAX_RECORD = 256 * 1024;

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Reads every record of a pcap or pcapng stream. */
export function* readCapture(src: ByteSource): Generator<CaptureRecord> {
  const head = src.read(4);
  if (!head) throw new CaptureFormatError('empty capture file', 0);
  const be = view(head).getUint32(0, false);
  if (be === 0x0a0d0d0a) {
    yield* readPcapng(src, head);
    return;
  }
  const le = view(head).getUint32(0, true);
  let little: boolean;
  let nano: boolean;
  if (le === 0xa1b2c3d4 || le === 0xa1b23c4d) {
    little = true;
    nano = le === 0xa1b23c4d;
  } else if (be === 0xa1b2c3d4 || be === 0xa1b23c4d) {
    little = false;
    nano = be === 0xa1b23c4d;
  } else {
    throw new CaptureFormatError('not a pcap or pcapng file (bad magic number)', 0);
  }
  const rest = src.read(20);
  if (!rest) throw new CaptureFormatError('pcap file header is cut short', 4);
  const h = view(rest);
  const major = h.getUint16(0, little);
  if (major !== 2) throw new CaptureFormatError(`pcap version ${major} is not 2`, 4);
  const linktype = h.getUint32(16, little) & 0x0fffffff;
  for (;;) {
    const at = src.offset;
    const rh = src.read(16);
    if (!rh) return;
    const r = view(rh);
    const sec = r.getUint32(0, little);
    const frac = r.getUint32(4, little);
    const incl = r.getUint32(8, little);
    const orig = r.getUint32(12, little);
    if (incl > MAX_RECORD) throw new CaptureFormatError(`record length ${incl} is implausible`, at);
    const data = src.read(incl) ?? new Uint8Array(0);
    if (data.length !== incl) throw new CaptureFormatError('file ends inside a record', at);
    yield { linktype, time: sec + frac / (nano ? 1e9 : 1e6), data, origLength: Math.max(orig, incl) };
  }
}

interface NgIface {
  linktype: number;
  snaplen: number;
  /** Seconds per timestamp unit. */
  unit: number;
  name?: string;
}

function* readPcapng(src: ByteSource, first: Uint8Array): Generator<CaptureRecord> {
  let little = true;
  let ifaces: NgIface[] = [];
  let pendingType: Uint8Array | undefined = first;
  for (;;) {
    const at = src.offset - (pendingType ? 4 : 0);
    const typeBytes = pendingType ?? src.read(4);
    pendingType = undefined;
    if (!typeBytes) return;
    const lenBytes = src.read(4);
    if (!lenBytes) throw new CaptureFormatError('pcapng block is cut short', at);
    const rawType = view(typeBytes).getUint32(0, little);
    if (view(typeBytes).getUint32(0, false) === 0x0a0d0d0a) {
      // Section header: its byte-order magic decides how this and every later block is read.
      const bom = src.read(4);
      if (!bom) throw new CaptureFormatError('pcapng section header is cut short', at);
      const magic = view(bom).getUint32(0, true);
      if (magic === 0x1a2b3c4d) little = true;
      else if (magic === 0x4d3c2b1a) little = false;
      else throw new CaptureFormatError('pcapng section header has a bad byte-order magic', at + 8);
      const total = view(lenBytes).getUint32(0, little);
      if (total < 28 || total % 4 !== 0 || total > MAX_RECORD) throw new CaptureFormatError(`bad pcapng block length ${total}`, at);
      src.read(total - 12); // version, section length, options, trailing length
      ifaces = [];
      continue;
    }
    const total = view(lenBytes).getUint32(0, little);
    if (total < 12 || total % 4 !== 0 || total > MAX_RECORD + 64) throw new CaptureFormatError(`bad pcapng block length ${total}`, at);
    const body = src.read(total - 12) ?? new Uint8Array(0);
    if (body.length !== total - 12) throw new CaptureFormatError('pcapng block is cut short', at);
    const trailer = src.read(4);
    if (!trailer || view(trailer).getUint32(0, little) !== total) {
      throw new CaptureFormatError('pcapng block length does not match its trailer', at);
    }
    const b = view(body);
    if (rawType === 1) {
      if (body.length < 8) throw new CaptureFormatError('pcapng interface block is too short', at);
      const iface: NgIface = { linktype: b.getUint16(0, little), snaplen: b.getUint32(4, little), unit: 1e-6 };
      for (const [code, val] of options(body, 8, little)) {
        if (code === 9 && val.length >= 1) {
          const v = val[0];
          iface.unit = v & 0x80 ? 2 ** -(v & 0x7f) : 10 ** -(v & 0x7f);
        } else if (code === 2) {
          iface.name = Buffer.from(val).toString('utf8').replace(/\0+$/, '');
        }
      }
      ifaces.push(iface);
    } else if (rawType === 6) {
      if (body.length < 20) throw new CaptureFormatError('pcapng packet block is too short', at);
      const id = b.getUint32(0, little);
      const iface = ifaces[id];
      if (!iface) throw new CaptureFormatError(`pcapng packet names interface ${id}, which is not described`, at);
      const ts = b.getUint32(4, little) * 2 ** 32 + b.getUint32(8, little);
      const cap = b.getUint32(12, little);
      const orig = b.getUint32(16, little);
      if (20 + cap > body.length) throw new CaptureFormatError('pcapng packet runs past its block', at);
      const rec: CaptureRecord = {
        linktype: iface.linktype,
        time: ts * iface.unit,
        data: body.slice(20, 20 + cap),
        origLength: Math.max(orig, cap),
      };
      if (iface.name !== undefined) rec.iface = iface.name;
      for (const [code, val] of options(body, 20 + ((cap + 3) & ~3), little)) {
        if (code === 2 && val.length >= 4) {
          const dir = view(val).getUint32(0, little) & 3;
          if (dir === 1) rec.direction = 'in';
          else if (dir === 2) rec.direction = 'out';
        }
      }
      yield rec;
    } else if (rawType === 3) {
      const iface = ifaces[0];
      if (!iface) throw new CaptureFormatError('pcapng simple packet before any interface block', at);
      const orig = b.getUint32(0, little);
      const cap = Math.min(orig, body.length - 4, iface.snaplen === 0 ? Infinity : iface.snaplen);
      const rec: CaptureRecord = { linktype: iface.linktype, time: 0, data: body.slice(4, 4 + cap), origLength: orig };
      if (iface.name !== undefined) rec.iface = iface.name;
      yield rec;
    }
    // Other blocks (name resolution, statistics, custom) carry nothing the shadow needs.
  }
}

function* options(body: Uint8Array, from: number, little: boolean): Generator<[number, Uint8Array]> {
  const b = view(body);
  let off = from;
  while (off + 4 <= body.length) {
    const code = b.getUint16(off, little);
    const len = b.getUint16(off + 2, little);
    if (code === 0) return;
    if (off + 4 + len > body.length) return;
    yield [code, body.subarray(off + 4, off + 4 + len)];
    off += 4 + ((len + 3) & ~3);
  }
}

/** Opens a capture file and yields its records; the file is closed when iteration ends. */
export function* readCaptureFile(path: string): Generator<CaptureRecord> {
  const fd = fs.openSync(path, 'r');
  try {
    yield* readCapture(new FileSource(fd));
  } finally {
    fs.closeSync(fd);
  }
}

/** A classic pcap file (little-endian, microseconds), for tests and tools that need to hand the shadow a file. */
export function writePcap(linktype: number, records: { time?: number; data: Uint8Array; origLength?: number }[]): Buffer {
  const parts: Buffer[] = [];
  const gh = Buffer.alloc(24);
  gh.writeUInt32LE(0xa1b2c3d4, 0);
  gh.writeUInt16LE(2, 4);
  gh.writeUInt16LE(4, 6);
  gh.writeUInt32LE(65535, 16);
  gh.writeUInt32LE(linktype, 20);
  parts.push(gh);
  for (const r of records) {
    const rh = Buffer.alloc(16);
    const t = r.time ?? 0;
    rh.writeUInt32LE(Math.floor(t), 0);
    rh.writeUInt32LE(Math.round((t - Math.floor(t)) * 1e6), 4);
    rh.writeUInt32LE(r.data.length, 8);
    rh.writeUInt32LE(r.origLength ?? r.data.length, 12);
    parts.push(rh, Buffer.from(r.data));
  }
  return Buffer.concat(parts);
}
