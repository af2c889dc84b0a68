// Strings that are not well-formed Unicode (a lone UTF-16 surrogate, which JSON can carry
// as an escape such as "\ud800") are refused with 400 wherever a client can put them: JSON
// bodies (keys and values), query strings and path parameters. Nothing stores them, so
// nothing downstream (Redis, Lua's JSON, other clients' decoders) ever meets one.
import type { FastifyInstance } from 'fastify';
import { ProblemError } from '../errors.js';

const LONE_SURROGATE = /\p{Surrogate}/u;

function wellFormed(text: string): boolean {
  // With the u flag a surrogate pair is one code point, so only a lone half matches.
  return !LONE_SURROGATE.test(text);
}

/**
 * The JSON pointer of the first string (key or value) in `value` that is not well-formed,
 * or null. Iterative: a value nested thousands deep must not overflow the stack.
 */
export function illFormedStringAt(value: unknown): string | null {
  const stack: [unknown, string][] = [[value, '']];
  while (stack.length > 0) {
    const [node, at] = stack.pop()!;
    if (typeof node === 'string') {
      if (!wellFormed(node)) return at || '/';
    } else if (node !== null && typeof node === 'object') {
      for (const [key, child] of Object.entries(node)) {
        const path = `${at}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
        if (!wellFormed(key)) return at || '/';
        stack.push([child, path]);
      }
    }
  }
  return null;
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
      const at = illFormedStringAt(value);
      if (at !== null) {
        done(refuse(part, at));
        return;
      }
    }
    done();
  });
}
