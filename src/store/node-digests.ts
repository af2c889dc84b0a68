// The names long paths go by in Redis' index keys. An index key names a node of the path tree
// (P.."ax:"..node); past NODE_KEY_MAX characters it names "#" and the SHA-1 of the node
// instead (includes/indexes.lua, nodeKey). A key as long as its path costs Redis at every
// turn: Lua hashes every byte of each string it makes, and Redis hashes and compares keys
// byte by byte; in a profile of acquires of 64 paths of 512 characters that was a third of
// Redis' time. The conflict check asks the keys of every ancestor of every path (up to
// 64 x 16), so the service hashes those here, where it costs a replica's CPU rather than
// Redis' one thread, and sends the digests along; Lua hashes only what it writes (at most
// four nodes per resource). A collision of two long nodes would merge their index sets, which
// can only report a conflict where none is (never miss one); SHA-1's 160 bits make that moot.
import { createHash } from 'node:crypto';

/** Nodes longer than this are named by their SHA-1 in index keys (the same in Lua). */
export const NODE_KEY_MAX = 64;

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');

/** A node's name in index keys: the node itself, or past NODE_KEY_MAX characters "#" and its SHA-1. */
export function nodeKeyName(node: string): string {
  return node.length <= NODE_KEY_MAX ? node : `#${sha1(node)}`;
}

/**
 * The SHA-1s (40 hex digits each, concatenated) of the nodes longer than NODE_KEY_MAX of
 * each path, in the order the covering walk meets them: path by path, each path's ancestors
 * shallowest first, then the path itself. "" for short paths, which is nearly always.
 */
export function nodeDigests(paths: readonly string[]): string {
  let digests = '';
  for (const path of paths) {
    if (path.length <= NODE_KEY_MAX) continue;
    for (let cut = path.indexOf('/'); ; cut = path.indexOf('/', cut + 1)) {
      const end = cut === -1 ? path.length : cut;
      if (end > NODE_KEY_MAX) digests += sha1(path.slice(0, end));
      if (cut === -1) break;
    }
  }
  return digests;
}
