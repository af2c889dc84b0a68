// Strings that are not well-formed Unicode (a lone UTF-16 surrogate, which JSON can carry
// as an escape such as "\ud800") are refused with 400 wherever a client can put them: JSON
// bodies (keys and values), query strings and path parameters. Nothing stores them, so
// nothing downstream (Redis, Lua's JSON, other clients' decoders) ever meets one.
import type { FastifyInstance } from 'fastify';
import { ProblemError } from '../errors.js';

// String.prototype.isWellFormed (ES2024, in Node 20 and later): a native scan, where a regular
// expression per string cost the acquire path a few microseconds. (Declared here: the project
// compiles against ES2022's library.)
declare global {
  interface String {
    isWellFormed(): boolean;
  }
}

function wellFormed(text: string): boolean {
  return text.isWellFormed();
}

/** A string (key or value) on the way down, with where it hangs, to name it if it is refused. */
interface Visit {
  node: unknown;
  parent: Visit | null;
  key: string;
}

/** The JSON pointer of `visit` (built only for the string refused, not for every key on the way). */
function pointerOf(visit: Visit): string {
  const keys: string[] = [];
  for (let at: Visit | null = visit; at !== null && at.parent !== null; at = at.parent) keys.push(at.key.replace(/~/g, '~0').replace(/\//g, '~1'));
  return keys.length === 0 ? '/' : `/${keys.reverse().join('/')}`;
}

/**
 * The JSON pointer of the first string (key or value) in `value` that is not well-formed,
 * or null. Iterative: a value nested thousands deep must not overflow the stack.
 */
export function illFormedStringAt(value: unknown): string | null {
  const stack: Visit[] = [{ node: value, parent: null, key: '' }];
  while (stack.length > 0) {
    const visit = stack.pop()!;
    const node = visit.node;
    if (typeof node === 'string') {
      if (!wellFormed(node)) return pointerOf(visit);
    } else if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        const child: unknown = node[i];
        if (typeof child === 'string' || (child !== null && typeof child === 'object')) stack.push({ node: child, parent: visit, key: String(i) });
      }
    } else if (node !== null && typeof node === 'object') {
      for (const key in node) {
        if (!Object.hasOwn(node, key)) continue;
        // A key that is not well-formed is refused at the object that holds it.
        if (!wellFormed(key)) return pointerOf(visit);
        const child = (node as Record<string, unknown>)[key];
        if (typeof child === 'string' || (child !== null && typeof child === 'object')) stack.push({ node: child, parent: visit, key });
      }
    }
  }
  return null;
}

// A parsed JSON body holds a lone surrogate only if its text has a \u escape of one: UTF-8
// that is not well-formed is refused before parsing (problems.ts), and UTF-8 cannot encode a
// surrogate. So a body whose text has no \uD800-\uDFFF escape (nearly every body) is not
// walked: the walk cost a 64 KiB payload of [[],[],...] a millisecond of the event loop.
// (An escaped backslash before "ud800" matches too; such a body is walked, and passes.)
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;
const bodiesWithoutSurrogateEscapes = new WeakSet<object>();

/** Notes that `value` was parsed from `jsonText`; a body so noted is walked only if the text may hold a lone surrogate. */
export function noteParsedJson(jsonText: string, value: unknown): void {
  if (value !== null && typeof value === 'object' && !SURROGATE_ESCAPE.test(jsonText)) bodiesWithoutSurrogateEscapes.add(value);
}

function refuse(part: string, at: string): ProblemError {
  const where = at === '/' ? part : `${part}${wellFormed(at) ? at : ''}`;
  return new ProblemError('invalid_request', `${where} holds a string that is not well-formed Unicode (a lone UTF-16 surrogate).`);
}

/**
 * The query string as sent: the parser decodes percent-escapes that are not UTF-8 (such as
 * %ED%A0%80, a lone surrogate) to U+FFFD, so what it hands on is always well-formed.
 */
function queryIsUtf8(url: string): boolean {
  const at = url.indexOf('?');
  if (at < 0) return true;
  try {
    decodeURIComponent(url.slice(at + 1).replace(/\+/g, ' '));
    return true;
  } catch {
    return false;
  }
}

/** Refuses ill-formed strings in the body, the query string and the path parameters. */
export function refuseIllFormedStrings(app: FastifyInstance): void {
  app.addHook('preValidation', (request, _reply, done) => {
    if (!queryIsUtf8(request.url)) {
      done(new ProblemError('invalid_request', 'The query string is not validly percent-encoded UTF-8 (a lone surrogate, or bytes that are not UTF-8).'));
      return;
    }
    const parts: [string, unknown][] = [
      ['body', request.body],
      ['querystring', request.query],
      ['params', request.params],
    ];
    for (const [part, value] of parts) {
      if (part === 'body' && value !== null && typeof value === 'object' && bodiesWithoutSurrogateEscapes.has(value)) continue;
      const at = illFormedStringAt(value);
      if (at !== null) {
        done(refuse(part, at));
        return;
      }
    }
    done();
  });
}
