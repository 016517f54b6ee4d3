// Per-rule reasons a part-B match cannot be honoured, where the extension as a whole can (MatchExtension.unsupported
// covers whole extensions). The engine refuses to enforce a rule for which this returns a reason.
import type { MatchUse } from '../../rules/model';
import { unsupportedReason as bpfReason, type BpfOptions } from '../bpf';
import type { OwnerOptions } from '../owner';
import { unsupportedReason as setReason, type SetOptions } from '../set';

export function ruleUnsupportedReason(use: MatchUse): string | undefined {
  switch (use.ext.name) {
    case 'set':
      return setReason(use.opts as SetOptions);
    case 'bpf':
      return bpfReason(use.opts as BpfOptions);
    case 'owner':
      return (use.opts as OwnerOptions).supplGroups
        ? 'owner: --suppl-groups needs the supplementary groups of the socket owner, which the queue does not report'
        : undefined;
    default:
      return use.ext.unsupported;
  }
}
