// Interface names as xtables_parse_interface reads them and the kernel compares them: at most IFNAMSIZ-1 (15)
// characters; a trailing `+` matches every name with that prefix.
import type { OptionUse } from '../types';
import { badArg } from './opts';

export function parseIfaceName(use: OptionUse): string {
  const name = use.args[0] ?? '';
  if (name.length > 15) badArg(use, `interface name \`${name}' must be shorter than IFNAMSIZ (15)`);
  return name;
}

export function ifaceMatches(pattern: string, name: string): boolean {
  if (pattern.endsWith('+')) return name.startsWith(pattern.slice(0, -1));
  return name === pattern;
}
