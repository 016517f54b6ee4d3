// Reading a rule file from disk into a Ruleset.
import fs from 'node:fs';
import { RuleError } from '../extensions/types';
import { RuleErrors } from './errors';
import type { Family, Ruleset } from './model';
import { parseRuleset } from './parse';

/** Parse and validate a rule file. `family` absent: inferred from the file (IPv4 when nothing tells). */
export function loadRuleFile(path: string, family?: Family): Ruleset {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new RuleErrors([new RuleError(`cannot read rule file: ${reason}`, { file: path, line: 0, column: 0 })]);
  }
  return parseRuleset(text, path, family ? { family } : {});
}
