// The surface of build/Release/nfqwall.node. src/native.ts loads it; nothing else touches the addon directly.

export interface QueueOptions {
  /** NFQUEUE number, 0..65535. */
  queue: number;
  /** Bytes of each packet copied to userspace (NFQNL_COPY_PACKET range). Default 0xffff. */
  copyRange?: number;
  /** Kernel queue length (NFQA_CFG_QUEUE_MAXLEN). Default 4096. */
  maxLen?: number;
  /** Netlink socket receive buffer in bytes (SO_RCVBUFFORCE). Default 8 MiB. */
  rcvbuf?: number;
  /** NFQA_CFG_F_FAIL_OPEN: the kernel accepts instead of dropping when the queue is full. Default false. */
  failOpen?: boolean;
  /** NFQA_CFG_F_GSO: take GSO packets whole. Default true. */
  gso?: boolean;
  /** NFQA_CFG_F_UID_GID: report the socket owner of local packets. Default true. */
  uidGid?: boolean;
  /** Batches that may wait for JavaScript before the overload verdict applies. Default 64. */
  maxPendingBatches?: number;
  /** Verdict for packets JavaScript cannot take in time (overload) or never answered (close). Default 'drop'. */
  overloadVerdict?: 'accept' | 'drop';
  /** Most packets handed to JavaScript in one batch. Default 256. */
  maxBatch?: number;
}

/**
 * Packets received in one wakeup of the receive thread. Column arrays, one entry per packet; payloads are
 * `data.subarray(offsets[i], offsets[i + 1])`. Valid until the batch is verdicted.
 */
export interface PacketBatch {
  readonly seq: number;
  readonly count: number;
  readonly ids: Uint32Array;
  /** NF_INET_* hook number: 0 PREROUTING, 1 INPUT, 2 FORWARD, 3 OUTPUT, 4 POSTROUTING. */
  readonly hooks: Uint8Array;
  /** Ethertype from the packet header: 0x0800 or 0x86dd. */
  readonly protos: Uint16Array;
  readonly marks: Uint32Array;
  /** Interface indexes; 0 = none. */
  readonly inIf: Uint32Array;
  readonly outIf: Uint32Array;
  readonly physInIf: Uint32Array;
  readonly physOutIf: Uint32Array;
  /** Socket owner of local packets; 0xffffffff = unknown. */
  readonly uids: Uint32Array;
  readonly gids: Uint32Array;
  /** Length of the packet on the wire (>= copied length when truncated). */
  readonly origLens: Uint32Array;
  /** PACKET_FLAG_* bits (src/native.ts): checksum not ready 1, GSO 2, truncated copy 4. */
  readonly flags: Uint8Array;
  /** 6-byte source hardware address per packet when the kernel reported one (hwLens[i] = 6), else zeros. */
  readonly hwAddrs: Uint8Array;
  readonly hwLens: Uint8Array;
  readonly offsets: Uint32Array;
  readonly data: Uint8Array;
}

export interface QueueStats {
  queue: number;
  received: number;
  /** Verdicts other than NF_DROP (NF_ACCEPT, NF_QUEUE, NF_REPEAT), on every path (JS, overload, defaulted). */
  accepted: number;
  dropped: number;
  /** Sum of the wire lengths (origLens) of received packets. */
  bytes: number;
  batches: number;
  errors: number;
  enobufs: number;
  /** Packets given the overload verdict because JavaScript was behind. */
  overload: number;
  /** Packets given the default verdict at close or because JavaScript never answered. */
  defaulted: number;
  /** From /proc/net/netfilter/nfnetlink_queue (read at call time). */
  kernelQueueTotal: number;
  kernelQueueDropped: number;
  kernelUserDropped: number;
  kernelIdSequence: number;
  /** Batches handed to JavaScript and not verdicted yet. */
  pendingBatches: number;
  /** Milliseconds since the receive thread last woke up or timed out its poll (health, for the watchdog). 0 once closed. */
  threadIdleMs: number;
  /** close() has run (stats stay readable; the kernel columns read 0 once the queue is unbound). */
  closed?: boolean;
}

export interface VerdictOptions {
  /** Per packet: NF_DROP 0, NF_ACCEPT 1, or (queue << 16) | 3 (NF_QUEUE) to pass it to another queue. */
  verdicts: Uint32Array;
  /** Per packet mark to set, applied where setMark[i] is 1 (to every packet when setMark is absent). */
  marks?: Uint32Array;
  setMark?: Uint8Array;
  /** Per packet replacement bytes (checksums already fixed by the caller), or undefined to keep the packet. */
  payloads?: (Uint8Array | undefined)[];
}

export class Queue {
  /**
   * Binds the queue in the current network namespace and starts the receive thread. `onBatch` runs on the event loop;
   * it must call `verdict` for the batch, now or later. If it throws, or the queue closes first, the batch gets the
   * overload verdict and is counted in `defaulted`.
   */
  constructor(options: QueueOptions, onBatch: (batch: PacketBatch) => void);
  /** One verdict per packet of the batch, sent in one sendmsg. Throws if the batch was already verdicted. */
  verdict(batch: PacketBatch, v: VerdictOptions): void;
  stats(): QueueStats;
  /** Stops the thread, gives every outstanding packet the overload verdict, unbinds and closes the socket. */
  close(): void;
}

/** sd_notify(3): sends `state` to $NOTIFY_SOCKET. False when NOTIFY_SOCKET is unset. Throws on a send error. */
export function notify(state: string): boolean;

/**
 * Sends a whole IPv4/IPv6 packet (header included, checksums correct) as a locally generated packet of the current
 * network namespace: it passes the OUTPUT hook and routing, as the kernel's own REJECT replies do. Throws on error.
 */
export function sendRaw(packet: Uint8Array): void;
