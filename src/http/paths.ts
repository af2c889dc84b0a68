// Resource path rules the schema's pattern cannot express on its own.

/** True when a lease on `outer` covers `inner`: the same path, or one below it. */
export function covers(outer: string, inner: string): boolean {
  return outer === inner || (inner.length > outer.length && inner.startsWith(outer) && inner[outer.length] === '/');
}

/** The first pair of paths in which one covers the other (duplicates included), if any. */
export function findOverlap(paths: string[]): [string, string] | undefined {
  // Sorted with "/" below every character a segment may hold, each path is followed
  // directly by the paths it covers, so checking neighbours finds any overlap.
  const byTree = (path: string) => path.replaceAll('/', '\u0000');
  const sorted = [...paths].sort((a, b) => (byTree(a) < byTree(b) ? -1 : byTree(a) > byTree(b) ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    if (covers(sorted[i - 1]!, sorted[i]!)) return [sorted[i - 1]!, sorted[i]!];
  }
  return undefined;
}
