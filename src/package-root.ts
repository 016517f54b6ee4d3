import fs from 'node:fs';
import path from 'node:path';

/** The package root: the nearest directory above this file with a package.json (from src/ under tsx and from dist/). */
export function packageRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`nfqwall: no package.json above ${__dirname}`);
    dir = up;
  }
  return dir;
}
