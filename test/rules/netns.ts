// A throwaway network namespace for tests that ask the kernel (iptables-nft 1.8.9) what it accepts and prints.
// Root only: callers skip with the reason `whyNoKernel()` gives.
import { spawnSync } from 'node:child_process';

export function whyNoKernel(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  for (const bin of ['ip', 'iptables-restore', 'ip6tables-restore', 'iptables-save']) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) return `${bin} not installed`;
  }
  const v = spawnSync('iptables', ['--version'], { encoding: 'utf8' }).stdout ?? '';
  if (!v.includes('v1.8.9')) return `written against iptables v1.8.9, this host has ${v.trim()}`;
  return undefined;
}

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

export class Netns {
  readonly name: string;
  private made = false;

  constructor(tag: string) {
    this.name = `nfqw-${tag}-${process.pid}`;
  }

  create(): void {
    const r = spawnSync('ip', ['netns', 'add', this.name], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ip netns add ${this.name}: ${r.stderr}`);
    this.made = true;
  }

  destroy(): void {
    if (this.made) spawnSync('ip', ['netns', 'del', this.name]);
    this.made = false;
  }

  exec(args: string[], input?: string): Run {
    const r = spawnSync('ip', ['netns', 'exec', this.name, ...args], { input, encoding: 'utf8', maxBuffer: 1 << 26 });
    return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** iptables-restore (flushing every table the text names); extra args such as -c. */
  restore(family: 4 | 6, text: string, args: string[] = []): Run {
    return this.exec([family === 6 ? 'ip6tables-restore' : 'iptables-restore', ...args], text);
  }

  /** Empties `table` and deletes its user chains. */
  clear(family: 4 | 6, table: string): void {
    this.restore(family, `*${table}\n-F\n-X\nCOMMIT\n`);
  }
}
