// -m comment (libxt_comment.c): a note that always matches. The kernel holds XT_MAX_COMMENT_LEN (256) bytes
// including the terminating NUL, and iptables silently cuts a longer comment to 255 bytes (checked against the
// kernel: 256 and 300 characters both save as the first 255). nfqwall does the same, without splitting a UTF-8
// character (iptables would, leaving invalid UTF-8 in the saved file).
import { quote } from '../rules/quote';
import type { MatchExtension } from './types';
import { badMatch, byName } from './util/opts';

export interface CommentOptions {
  comment: string;
}

export const MAX_COMMENT_BYTES = 255;

export function truncateComment(text: string): string {
  // A UTF-16 unit is at most 3 UTF-8 bytes: short comments (nearly all) need no encoding to know they fit.
  if (text.length * 3 <= MAX_COMMENT_BYTES) return text;
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= MAX_COMMENT_BYTES) return text;
  let end = MAX_COMMENT_BYTES;
  while (end > 0 && (buf[end] & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString('utf8');
}

const comment: MatchExtension<CommentOptions> = {
  kind: 'match',
  flowStable: () => true,
  name: 'comment',
  options: [{ name: 'comment', args: 1 }],
  parse(opts, ctx) {
    const use = byName(opts, 'comment').get('comment');
    if (!use) badMatch(ctx, 'comment: option "--comment" must be specified');
    return { comment: truncateComment(use.args[0] ?? '') };
  },
  format(o) {
    return `--comment ${quote(o.comment)}`;
  },
  match() {
    return true;
  },
};

export default comment;
