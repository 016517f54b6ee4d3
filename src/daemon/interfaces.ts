// Interface index -> name for the namespace the daemon runs in, from sysfs (`ip netns exec` remounts /sys for the
// namespace). Refreshed when an unknown index shows up, at most once per second, so a flood of packets from a device
// that vanished costs one directory read a second, not one per packet.
import fs from 'node:fs';
import path from 'node:path';

export interface InterfaceNamesOptions {
  /** Directory holding one entry per device with an `ifindex` file. */
  sysDir?: string;
  /** Least milliseconds between two refreshes caused by unknown indexes. */
  minRefreshMs?: number;
  now?: () => number;
}

export class InterfaceNames {
  private names = new Map<number, string>();
  private lastRefresh = -Infinity;
  private readonly sysDir: string;
  private readonly minRefreshMs: number;
  private readonly now: () => number;

  constructor(opts: InterfaceNamesOptions = {}) {
    this.sysDir = opts.sysDir ?? '/sys/class/net';
    this.minRefreshMs = opts.minRefreshMs ?? 1000;
    this.now = opts.now ?? (() => performance.now());
    this.refresh();
  }

  /** Rereads the device list. Devices that disappear or are read half-removed are skipped. */
  refresh(): void {
    this.lastRefresh = this.now();
    const names = new Map<number, string>();
    let entries: string[];
    try {
      entries = fs.readdirSync(this.sysDir);
    } catch {
      entries = [];
    }
    for (const name of entries) {
      try {
        const index = Number.parseInt(fs.readFileSync(path.join(this.sysDir, name, 'ifindex'), 'utf8'), 10);
        if (Number.isInteger(index) && index > 0) names.set(index, name);
      } catch {
        // Gone between readdir and read.
      }
    }
    this.names = names;
  }

  /** The name of an interface index; undefined for 0 (none) or an index still unknown after a refresh. */
  name(index: number): string | undefined {
    if (index === 0) return undefined;
    const known = this.names.get(index);
    if (known !== undefined) return known;
    if (this.now() - this.lastRefresh >= this.minRefreshMs) {
      this.refresh();
      return this.names.get(index);
    }
    return undefined;
  }

  get size(): number {
    return this.names.size;
  }
}
