// Live capture with the `cap` package (libpcap), one handle per interface: on "any" libpcap gives cooked frames whose
// direction the shadow could read, but per-interface handles keep the interface name, which -i/-o rules need.
// Capture is passive: cap's send() is never called, so nothing is injected, dropped or altered.
import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { linktypeFromCap } from './frame';

interface CapHandle extends EventEmitter {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  close(): void;
  stats?: () => { ps_recv?: number; ps_drop?: number; ps_ifdrop?: number };
}
interface CapModule {
  Cap: { new (): CapHandle; deviceList(): { name: string }[] };
}

function loadCap(): CapModule {
  // cap ships no type declarations; the surface used here is declared above.
  return require('cap') as CapModule;
}

export interface LinkInfo {
  mac?: Uint8Array;
  /** rx + tx packets as the interface counts them (`ip -s link`), to bound what the capture may have missed. */
  packets?: number;
}

interface IpLinkJson {
  address?: string;
  stats64?: { rx?: { packets?: number }; tx?: { packets?: number } };
}

export function linkInfo(iface: string): LinkInfo {
  const out = execFileSync('ip', ['-j', '-s', 'link', 'show', 'dev', iface], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'pipe'] });
  const row = (JSON.parse(out) as IpLinkJson[])[0];
  const info: LinkInfo = {};
  if (row?.address && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(row.address)) {
    info.mac = Uint8Array.from(row.address.split(':').map((h) => parseInt(h, 16)));
  }
  const rx = row?.stats64?.rx?.packets;
  const tx = row?.stats64?.tx?.packets;
  if (typeof rx === 'number' && typeof tx === 'number') info.packets = rx + tx;
  return info;
}

export interface LiveFrame {
  iface: string;
  linktype: number;
  data: Uint8Array;
  origLength: number;
}

export class LiveCapture {
  private readonly handles: { iface: string; cap: CapHandle }[] = [];
  /** Frames cut short by the capture buffer. */
  truncated = 0;

  constructor(private readonly onFrame: (f: LiveFrame) => void) {}

  open(iface: string, filter: string, bufSize = 16 * 1024 * 1024): void {
    const { Cap } = loadCap();
    const cap = new Cap();
    const buffer = Buffer.alloc(65535);
    const name = cap.open(iface, filter, bufSize, buffer);
    const linktype = linktypeFromCap(name);
    if (linktype === undefined) {
      cap.close();
      throw new Error(`${iface}: link type ${name} is not supported by shadow mode`);
    }
    // The buffer is reused for the next packet: the frame is evaluated synchronously, before that happens.
    cap.on('packet', (nbytes: number, trunc: boolean) => {
      if (trunc) this.truncated++;
      this.onFrame({ iface, linktype, data: buffer.subarray(0, nbytes), origLength: nbytes });
    });
    this.handles.push({ iface, cap });
  }

  /** libpcap's own drop counts, when this cap build exposes pcap_stats (cap 0.2 does not). */
  drops(): number | undefined {
    let total = 0;
    for (const h of this.handles) {
      if (typeof h.cap.stats !== 'function') return undefined;
      const s = h.cap.stats();
      total += (s.ps_drop ?? 0) + (s.ps_ifdrop ?? 0);
    }
    return total;
  }

  close(): void {
    for (const h of this.handles) h.cap.close();
    this.handles.length = 0;
  }
}
