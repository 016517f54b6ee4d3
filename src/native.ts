// The one place that loads the addon. Everything else imports from here, typed by native/index.d.ts.
import path from 'node:path';
import type * as Addon from '../native/index';
import { packageRoot } from './package-root';

export type { CapabilitySets, FlowCacheStats, PacketBatch, QueueOptions, QueueStats, VerdictOptions } from '../native/index';
export type { BuiltProgram, HeapGuardState, MatcherDrain, MatcherHost, MatcherInput, MatcherResult } from '../native/index';

export const NF_DROP = 0;
export const NF_ACCEPT = 1;
export const NF_QUEUE = 3;
export const PACKET_FLAG_CSUM_NOT_READY = 1;
export const PACKET_FLAG_GSO = 2;
export const PACKET_FLAG_TRUNCATED = 4;
export const PACKET_FLAG_CSUM_NOT_VERIFIED = 8;

/** NF_INET_* hook numbers in the order the kernel numbers them. */
export const HOOK_BY_NUMBER = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'] as const;

export const addon: typeof Addon = require(path.join(packageRoot(), 'build', 'Release', 'nfqwall.node')) as typeof Addon;
