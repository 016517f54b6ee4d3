// Quoting as iptables-save does it (libxtables xtables_save_string): a word made only of [A-Za-z0-9_-] is printed
// bare; anything else is double-quoted with a backslash before each `"`, `\` and `'`.
const BARE = /^[A-Za-z0-9_-]+$/;

export function quote(value: string): string {
  if (BARE.test(value)) return value;
  return `"${value.replace(/["\\']/g, (c) => `\\${c}`)}"`;
}
