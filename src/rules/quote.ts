// Quoting as iptables-save does it (libxtables xtables_save_string): a word made only of [A-Za-z0-9_-] is printed
// bare; anything else is double-quoted with a backslash before each `"`, `\` and `'`.

function bareChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 || c === 45;
}

// One scan without a regex: rule ids format every comment of a ruleset.
export function quote(value: string): string {
  let bare = value.length > 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (bareChar(c)) continue;
    if (c === 34 || c === 92 || c === 39) return `"${value.replace(/["\\']/g, (x) => `\\${x}`)}"`;
    bare = false;
  }
  return bare ? value : `"${value}"`;
}
