// Where tests find things: the package root (from test/ under tsx and from dist/test/ compiled) and the shared corpus,
// which sits beside the clone as ../shared (NFQW_CORPUS overrides).
import fs from 'node:fs';
import path from 'node:path';

export function packageRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${__dirname}`);
    dir = up;
  }
  return dir;
}

export const CORPUS = process.env['NFQW_CORPUS'] ?? path.resolve(packageRoot(), '..', 'shared', 'corpus');
