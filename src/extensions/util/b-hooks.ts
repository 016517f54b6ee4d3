// Where the kernel accepts the part-B matches that are tied to hooks (their xt_match .hooks). parse() refuses a
// built-in chain of the wrong hook itself; user chains are known only after the whole ruleset is read, so the
// validator asks this for every hook a user chain is reached from.
import type { Hook } from '../../rules/model';
import type { MatchUse } from '../../rules/model';

const IN_PATH: readonly Hook[] = ['PREROUTING', 'INPUT', 'FORWARD'];
const OUT_PATH: readonly Hook[] = ['FORWARD', 'OUTPUT', 'POSTROUTING'];

/** The hooks a match may run at, or undefined when it may run anywhere. */
export function allowedHooks(use: MatchUse): readonly Hook[] | undefined {
  const opts = use.opts as Record<string, unknown>;
  switch (use.ext.name) {
    case 'owner':
      return ['OUTPUT', 'POSTROUTING'];
    case 'socket':
      return ['PREROUTING', 'INPUT'];
    case 'rpfilter':
      return ['PREROUTING'];
    case 'cgroup':
      return ['INPUT', 'OUTPUT', 'POSTROUTING'];
    case 'realm':
      return ['INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'];
    case 'policy':
      return opts.dir === 'in' ? IN_PATH : OUT_PATH;
    case 'devgroup': {
      // An input device exists on the input path, an output device on the output path.
      const src = opts.src !== undefined;
      const dst = opts.dst !== undefined;
      if (src && dst) return ['FORWARD'];
      return src ? IN_PATH : dst ? OUT_PATH : undefined;
    }
    default:
      return undefined;
  }
}
