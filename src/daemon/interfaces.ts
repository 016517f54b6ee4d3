// Interface index -> name for the namespace the daemon runs in, from sysfs (`ip netns exec` remounts /sys for the
// namespace). Reread as soon as an unknown index shows up, so the first packet on a new device already matches `-i`/`-o`
// by its name (ip monitor's refresh comes later); an index still unknown after that is reread at most once per second,
// so a flood of packets from a device that vanished costs one directory read a second, not one per packet.
import fs from 'node:fs';
import path from 'node:path';

export interface InterfaceNamesOptions {
  /** Directory holding one entry per device with an `ifindex` file. */
  sysDir?: string;
  /** Least milliseconds between two refreshes caused by unknown indexes. */
  minRefreshMs?: number;
  now?: () => number;
}

const MAX_MISSED = 1024;

export class InterfaceNames {
  private names = new Map<number, string>();
  /** Indexes a reread did not find, and when: each is reread again only after minRefreshMs. */
  private readonly missed = new Map<number, number>();
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
    const now = this.now();
    const last = this.missed.get(index);
    if (last !== undefined && now - last < this.minRefreshMs) return undefined;
    this.refresh();
    const found = this.names.get(index);
    if (found !== undefined) {
      this.missed.delete(index);
      return found;
    }
    // Indexes only grow; a bound keeps garbage indexes from growing the map without end.
    if (this.missed.size >= MAX_MISSED) this.missed.clear();
    this.missed.set(index, now);
    return undefined;
  }

  /** Every known interface, as [index, name]. */
  entries(): [number, string][] {
    return [...this.names];
  }

  get size(): number {
    return this.names.size;
  }
}
