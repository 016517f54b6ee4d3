// nfacct accounting objects as nfqwall keeps them itself: packets and bytes per object name, global like the
// kernel's nfnetlink_acct objects (shared by every rule naming them).
export interface AcctCounter {
  packets: number;
  bytes: number;
}

export class NfacctStore {
  private readonly objects = new Map<string, AcctCounter>();

  add(name: string, bytes: number): void {
    let c = this.objects.get(name);
    if (!c) {
      c = { packets: 0, bytes: 0 };
      this.objects.set(name, c);
    }
    c.packets++;
    c.bytes += bytes;
  }

  get(name: string): AcctCounter | undefined {
    return this.objects.get(name);
  }

  entries(): [string, AcctCounter][] {
    return [...this.objects.entries()];
  }

  reset(): void {
    this.objects.clear();
  }
}

/** Process-wide, like recentStore: MatchContext has no engine-owned store handle yet. */
export const nfacctStore = new NfacctStore();
