// Where tests find things: the package root (from test/ under tsx and from dist/test/ compiled) and the shared corpus,
// which sits beside the clone as ../shared (NFQW_CORPUS overrides).
import path from 'node:path';
import { packageRoot } from '../src/package-root';

export { packageRoot };

export const CORPUS = process.env['NFQW_CORPUS'] ?? path.resolve(packageRoot(), '..', 'shared', 'corpus');
