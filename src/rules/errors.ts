// All the errors of one file, thrown together so a user fixes them in one pass.
import { RuleError } from '../extensions/types';

export class RuleErrors extends Error {
  constructor(readonly errors: RuleError[]) {
    super(errors.map((e) => e.message).join('\n'));
    this.name = 'RuleErrors';
  }
}

export { RuleError };
