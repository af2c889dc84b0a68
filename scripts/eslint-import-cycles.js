// An ESLint rule, `local/no-import-cycle`: no module reaches itself through imports, type-only
// ones included. import-x/no-cycle skips `import type` edges by design (they are erased at run
// time), so it never saw the SDK's cycle that issue 16 item 5 names: held-lease and with-lease
// imported only types from lease-client, which imported with-lease. A type import still makes a
// module know another, and the layers are about knowing. Modules are resolved the way tsc
// resolves them (NodeNext: './x.js' is './x.ts'); packages are left out, they cannot close a
// cycle with ours.
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const NODE_NEXT = { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext };

/** file -> the project files it imports, kept while the file is unchanged. */
const importsCache = new Map();

function resolve(specifier, importer, options) {
  if (!specifier.startsWith('.')) return undefined;
  const resolved = ts.resolveModuleName(specifier, importer, options, ts.sys).resolvedModule;
  return resolved && !resolved.isExternalLibraryImport ? path.resolve(resolved.resolvedFileName) : undefined;
}

function importsOf(file, options) {
  let mtimeMs;
  try {
    mtimeMs = statSync(file).mtimeMs;
  } catch {
    return [];
  }
  const cached = importsCache.get(file);
  if (cached?.mtimeMs === mtimeMs) return cached.targets;
  // preProcessFile finds every import, export ... from, import() and require() without a full
  // parse; `import type` and `export type` are among them.
  const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  const targets = [...new Set(importedFiles.map(({ fileName }) => resolve(fileName, file, options)).filter(Boolean))];
  importsCache.set(file, { mtimeMs, targets });
  return targets;
}

/** The shortest import path from `from` back to `to`, or undefined. */
function pathBack(from, to, options) {
  const cameFrom = new Map([[from, null]]);
  const queue = [from];
  while (queue.length > 0) {
    const file = queue.shift();
    if (file === to) {
      const route = [];
      for (let at = file; at !== null; at = cameFrom.get(at)) route.unshift(at);
      return route;
    }
    for (const next of importsOf(file, options)) {
      if (!cameFrom.has(next)) {
        cameFrom.set(next, file);
        queue.push(next);
      }
    }
  }
  return undefined;
}

export const noImportCycle = {
  meta: {
    type: 'problem',
    docs: { description: 'Forbid an import whose module imports this one back, directly or not, type-only imports included.' },
    schema: [],
    messages: { cycle: 'Import cycle: {{route}} (type-only imports count).' },
  },
  create(context) {
    const file = path.resolve(context.physicalFilename);
    const options = context.sourceCode.parserServices?.program?.getCompilerOptions() ?? NODE_NEXT;
    const root = context.cwd;
    const check = (node, source) => {
      if (source?.type !== 'Literal' || typeof source.value !== 'string') return;
      const target = resolve(source.value, file, options);
      if (target === undefined) return;
      const route = target === file ? [file] : pathBack(target, file, options);
      if (route) context.report({ node: source, messageId: 'cycle', data: { route: [file, ...route].map((f) => path.relative(root, f)).join(' -> ') } });
    };
    return {
      ImportDeclaration: (node) => check(node, node.source),
      ExportNamedDeclaration: (node) => check(node, node.source),
      ExportAllDeclaration: (node) => check(node, node.source),
      ImportExpression: (node) => check(node, node.source),
    };
  },
};
