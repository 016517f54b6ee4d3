// -m bpf: a classic BPF program run over the packet from its network header (xt_bpf, bytecode mode).
import type { MatchExtension } from './types';
import { RuleError } from './types';
import { fail, failArg } from './util/b-opts';

export interface BpfInsn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export interface BpfOptions {
  program?: BpfInsn[];
  /** --object-pinned: an eBPF object in bpffs, which nfqwall cannot run. */
  pinned?: string;
}

const MAX_INSNS = 64; // XT_BPF_MAX_NUM_INSTR

/** bpf_parse_string in libxt_bpf.c: "N,code jt jf k,...". */
function parseProgram(word: string, err: (m: string) => never): BpfInsn[] {
  const head = /^\s*([0-9]+),/.exec(word);
  if (!head) err('bpf: error parsing program length');
  const len = Number(head![1]);
  if (len === 0) err('bpf: illegal zero length program');
  if (len > MAX_INSNS) err('bpf: number of instructions exceeds maximum');
  const out: BpfInsn[] = [];
  const parts = word.slice(head![0].length).split(',');
  if (parts[parts.length - 1] === '') parts.pop();
  for (let i = 0; i < parts.length; i++) {
    if (out.length >= len) err('bpf: real program length exceeds encoded length parameter');
    const m = /^\s*([0-9]+)\s+([0-9]+)\s+([0-9]+)\s+([0-9]+)/.exec(parts[i]!);
    if (!m) err(`bpf: error at instr ${i}`);
    out.push({
      code: Number(m![1]) & 0xffff,
      jt: Number(m![2]) & 0xff,
      jf: Number(m![3]) & 0xff,
      k: Number(m![4]) >>> 0,
    });
  }
  if (out.length !== len) err('bpf: parsed program length is less than the encoded length parameter');
  return out;
}

/** Classic BPF as sk_run_filter runs it on an skb whose data starts at the network header. 0 means no match. */
export function runBpf(prog: readonly BpfInsn[], data: Uint8Array, len = data.length): number {
  let A = 0;
  let X = 0;
  const M = new Uint32Array(16);
  const load = (off: number, size: number): number | undefined => {
    if (off < 0 || off + size > len || off + size > data.length) return undefined;
    if (size === 1) return data[off]!;
    if (size === 2) return (data[off]! << 8) | data[off + 1]!;
    return ((data[off]! << 24) | (data[off + 1]! << 16) | (data[off + 2]! << 8) | data[off + 3]!) >>> 0;
  };
  for (let pc = 0; pc < prog.length; pc++) {
    const { code, jt, jf, k } = prog[pc]!;
    const cls = code & 7;
    const size = [4, 2, 1, 0][(code >> 3) & 3]!;
    const mode = code & 0xe0;
    switch (cls) {
      case 0: // LD
      case 1: {
        // LDX
        let v: number | undefined;
        if (mode === 0x00) v = k;
        else if (mode === 0x20) v = load(k | 0, size);
        else if (mode === 0x40) v = load(X + (k | 0), size);
        else if (mode === 0x60) v = M[k & 15]!;
        else if (mode === 0x80) v = len;
        else if (mode === 0xa0) {
          const b = load(k | 0, 1);
          v = b === undefined ? undefined : (b & 0xf) << 2;
        }
        if (v === undefined) return 0;
        if (cls === 0) A = v >>> 0;
        else X = v >>> 0;
        break;
      }
      case 2:
        M[k & 15] = A;
        break;
      case 3:
        M[k & 15] = X;
        break;
      case 4: {
        const src = code & 8 ? X : k >>> 0;
        switch (code & 0xf0) {
          case 0x00:
            A = (A + src) >>> 0;
            break;
          case 0x10:
            A = (A - src) >>> 0;
            break;
          case 0x20:
            A = Math.imul(A, src) >>> 0;
            break;
          case 0x30:
            if (src === 0) return 0;
            A = Math.floor(A / src) >>> 0;
            break;
          case 0x40:
            A = (A | src) >>> 0;
            break;
          case 0x50:
            A = (A & src) >>> 0;
            break;
          case 0x60:
            A = src >= 32 ? 0 : (A << src) >>> 0;
            break;
          case 0x70:
            A = src >= 32 ? 0 : A >>> src;
            break;
          case 0x80:
            A = -A >>> 0;
            break;
          case 0x90:
            if (src === 0) return 0;
            A = (A % src) >>> 0;
            break;
          case 0xa0:
            A = (A ^ src) >>> 0;
            break;
          default:
            return 0;
        }
        break;
      }
      case 5: {
        const src = code & 8 ? X : k >>> 0;
        const op = code & 0xf0;
        if (op === 0x00) pc += k;
        else if (op === 0x10) pc += A === src ? jt : jf;
        else if (op === 0x20) pc += A > src ? jt : jf;
        else if (op === 0x30) pc += A >= src ? jt : jf;
        else if (op === 0x40) pc += (A & src) !== 0 ? jt : jf;
        else return 0;
        break;
      }
      case 6: {
        const r = code & 0x18;
        return r === 0x10 ? A : r === 0x08 ? X : k >>> 0;
      }
      case 7:
        if ((code & 0xf8) === 0) X = A;
        else A = X;
        break;
    }
  }
  return 0;
}

const bpf: MatchExtension<BpfOptions> = {
  kind: 'match',
  name: 'bpf',
  options: [
    { name: 'bytecode', args: 1 },
    { name: 'object-pinned', args: 1 },
  ],
  parse(uses, ctx) {
    const b = uses.find((u) => u.name === 'bytecode');
    const p = uses.find((u) => u.name === 'object-pinned');
    if (b && p) fail(b, 'bpf: option "--bytecode" cannot be used together with "--object-pinned".');
    if (b) return { program: parseProgram(b.args[0] ?? '', (m) => failArg(b, m)) };
    if (p) return { pinned: p.args[0] ?? '' };
    throw new RuleError('bpf: missing --bytecode or --object-pinned parameter', ctx.loc);
  },
  unsupportedFor: (o) => unsupportedReason(o),
  format(o) {
    if (o.pinned !== undefined) return `--object-pinned ${o.pinned}`;
    const prog = o.program!;
    return `--bytecode "${[String(prog.length), ...prog.map((i) => `${i.code} ${i.jt} ${i.jf} ${i.k}`)].join(',')}"`;
  },
  match(o, ctx) {
    // Pinned eBPF objects cannot be honoured; enforcement refuses them (unsupportedFor).
    if (!o.program) return false;
    return runBpf(o.program, ctx.pkt.data, Math.min(ctx.pkt.length, ctx.pkt.data.length)) !== 0;
  },
};

/** eBPF objects pinned in bpffs run in the kernel only. */
export function unsupportedReason(o: BpfOptions): string | undefined {
  return o.pinned !== undefined ? 'bpf: --object-pinned eBPF programs run only in the kernel' : undefined;
}

export default bpf;
