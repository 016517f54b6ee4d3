// Reading a rule file from disk into a Ruleset.
import fs from 'node:fs';
import { RuleError } from '../extensions/types';
import { zeroCounters } from './counters';
import { RuleErrors } from './errors';
import type { Family, Ruleset } from './model';
import { parseRulesetSteps } from './parse';
import { runSync, type Steps } from '../steps';

export interface LoadOptions {
  /**
   * Keep the `[packets:bytes]` counters written in the file, as `iptables-restore --counters` does. Without it the
   * counters are read (and must be well formed) but everything starts from zero, as plain `iptables-restore` does.
   */
  counters?: boolean;
}

/** Parse and validate a rule file. `family` absent: inferred from the file (IPv4 when nothing tells). */
export function loadRuleFile(path: string, family?: Family, opts: LoadOptions = {}): Ruleset {
  return runSync(loadRuleFileSteps(path, family, opts));
}

/** loadRuleFile in steps (src/steps.ts), for the daemon's reload. */
export function* loadRuleFileSteps(path: string, family?: Family, opts: LoadOptions = {}): Steps<Ruleset> {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new RuleErrors([new RuleError(`cannot read rule file: ${reason}`, { file: path, line: 0, column: 0 })]);
  }
  const rs = yield* parseRulesetSteps(text, path, family ? { family } : {});
  yield;
  if (opts.counters !== true) zeroCounters([rs]);
  return rs;
}
