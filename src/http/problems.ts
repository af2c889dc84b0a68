// Every error leaves as application/problem+json with a code from src/errors.ts: our own
// ProblemErrors, Fastify's validation, body-size, content-type and not-found errors, and
// Redis being unreachable (503 with Retry-After). Nothing a client sends becomes a 500.
import { isUtf8 } from 'node:buffer';
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { problem, ProblemError, type Problem, type ProblemCode } from '../errors.js';
import { isBackendUnavailable, isRedisOutOfMemory, ReplicaShortfallError } from '../redis/connection.js';
import { noteParsedJson, refuseIllFormedStrings } from './well-formed.js';

const RETRY_AFTER_SECONDS = '1';

/** Validation errors on these fields are about a resource path, so they say invalid_resource. */
const RESOURCE_PATH_FIELD = /^(\/resources\/\d+\/path|\/path|\/prefix|\/\*)$/;

export function sendProblem(reply: FastifyReply, body: Problem, headers: Record<string, string> = {}): FastifyReply {
  return reply.code(body.status).headers(headers).type('application/problem+json').send(body);
}

/**
 * For Fastify's `frameworkErrors` option: errors met before routing (a URL that does not
 * decode, a path parameter over the router's length limit) answer problem+json too.
 */
export function frameworkErrorHandler(error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const detail = error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'A path parameter is too long.' : 'The URL is not validly percent-encoded.';
  sendProblem(reply, problem('invalid_request', detail));
}

/**
 * For Fastify's `clientErrorHandler` option: what Node refuses before Fastify sees a request
 * (a request not received within HTTP_REQUEST_TIMEOUT_MS, headers over Node's limit, bytes
 * that are not HTTP) is answered problem+json too, and the connection closed.
 */
export function clientErrorHandler(this: FastifyInstance, error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const answer =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? problem('request_timeout', 'The whole request (headers and body) must arrive within HTTP_REQUEST_TIMEOUT_MS; the connection is closed.')
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? problem('headers_too_large', 'The request headers are larger than this server accepts.')
        : problem('invalid_request', 'The request is not valid HTTP.');
  this.log.debug({ err: error.message }, 'client error');
  answerRaw(socket, answer);
}

/** Writes `answer` as a whole HTTP response on a socket Node has not handed to Fastify, and closes it. */
function answerRaw(socket: Duplex, answer: Problem): void {
  if (socket.writable) {
    const body = JSON.stringify(answer);
    socket.write(
      `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status]}\r\nContent-Type: application/problem+json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/**
 * Requests Node answers by itself, before Fastify sees them, are answered problem+json too:
 * an Expect other than 100-continue (Node's own answer is a bare 417) and CONNECT (which Node
 * closes without a word: this API proxies nothing).
 */
function answerWhatNodeWouldNot(app: FastifyInstance): void {
  app.server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    const body = JSON.stringify(problem('invalid_request', `Expect: ${String(request.headers.expect)} is not supported; send the request without it (or with 100-continue).`));
    response.writeHead(400, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(body), connection: 'close' });
    response.end(body);
  });
  app.server.on('connect', (request: IncomingMessage, socket: Duplex) => {
    answerRaw(socket, problem('not_found', `${request.method} ${request.url} is not a route of this API; see /docs.`));
  });
}

export function installProblemHandling(app: FastifyInstance): void {
  answerWhatNodeWouldNot(app);
  // JSON only: without the text/plain parser a text body gets 415, not a confusing 400.
  app.removeContentTypeParser('text/plain');
  // An empty body on a POST whose fields are all optional (renew, release) means "{}".
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, raw, done) => {
    // JSON is UTF-8 (RFC 8259); a body declared in another charset would be read wrongly.
    const charset = charsetOf(request.headers['content-type']);
    if (charset !== null && charset !== 'utf-8' && charset !== 'utf8') {
      return done(new ProblemError('unsupported_media_type', `Send the body as application/json in UTF-8, not charset=${charset}.`), undefined);
    }
    // Bodies are not decompressed: a compressed one would be read as the bytes it is.
    const encoding = request.headers['content-encoding']?.trim().toLowerCase();
    if (encoding !== undefined && encoding !== '' && encoding !== 'identity') {
      return done(new ProblemError('unsupported_media_type', `Send the body without Content-Encoding (not ${encoding}): bodies are read as sent.`), undefined);
    }
    // Decoding would quietly turn bytes that are not UTF-8 into U+FFFD, and the service
    // would store what the client never sent.
    if (!isUtf8(raw as Buffer)) return done(new ProblemError('invalid_request', 'The body is not valid UTF-8.'), undefined);
    const body = (raw as Buffer).toString('utf8');
    if (body.trim() === '') return done(null, {});
    void parseJson(request, body, (error, value) => {
      if (!error) noteParsedJson(body, value);
      done(error, value);
    });
  });
  app.addHook('preValidation', (request, _reply, done) => {
    if (request.body === undefined && request.method === 'POST') request.body = {};
    done();
  });
  refuseIllFormedStrings(app);

  app.setNotFoundHandler((request, reply) => {
    sendProblem(reply, problem('not_found', `${request.method} ${request.url.split('?')[0]} is not a route of this API; see /docs.`));
  });

  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    if (error instanceof ProblemError) return sendProblem(reply, error.toProblem(), error.headers);
    if (isBackendUnavailable(error)) {
      request.log.warn({ err: error.message }, 'Redis unavailable');
      return sendProblem(reply, problem('backend_unavailable', describeUnavailable(error)), { 'retry-after': RETRY_AFTER_SECONDS });
    }
    const known = classify(error);
    if (known) return sendProblem(reply, problem(known.code, known.detail));
    // Name, message and stack only: an ioredis ReplyError carries the command it failed on,
    // arguments and all (a lease's payload, which may hold secrets).
    request.log.error({ err: { type: error.name, message: error.message, stack: error.stack } }, 'unexpected error');
    return sendProblem(reply, problem('internal_error', 'The service failed to handle this request; it has been logged.'));
  });
}

/** The charset parameter of a Content-Type, lower-cased and unquoted, or null when it has none. */
function charsetOf(contentType: string | undefined): string | null {
  const match = /;\s*charset\s*=\s*("?)([^";\s]*)\1/i.exec(contentType ?? '');
  return match ? match[2]!.toLowerCase() : null;
}

function describeUnavailable(error: Error): string {
  if (isRedisOutOfMemory(error)) {
    return (
      'Redis is full: it reached its maxmemory and refuses writes (policy noeviction, so nothing is evicted). This request ' +
      'changed nothing. Reads still work; writes succeed again once leases end and tombstones expire, or once an operator ' +
      'raises maxmemory (REDIS_MAXMEMORY for the embedded Redis).'
    );
  }
  if (error instanceof ReplicaShortfallError) {
    return (
      `Redis applied this change, but ${error.message} (REDIS_MIN_REPLICAS), so it is not durable: a failover may lose it. ` +
      'Retry: an acquire with the same requestId returns the same lease, a renew renews again, and a release, revoke or ' +
      'resolve answers as a repeat does.'
    );
  }
  if (/timed out/i.test(error.message)) {
    return (
      'Redis did not answer in time. A call that reaches Redis after its deadline changes nothing; retry shortly ' +
      '(an acquire with the same requestId is safe to retry and returns the lease if it was granted after all).'
    );
  }
  return (
    'Redis cannot be reached (it is down, restarting or failing over). A request sent while it was unreachable changed nothing; ' +
    'one whose connection broke on the way may have been applied. Retry shortly: an acquire with the same requestId returns ' +
    'the lease if it was granted after all.'
  );
}

function classify(error: FastifyError): { code: ProblemCode; detail: string } | undefined {
  if (error.validation) {
    const about = (field: RegExp) => error.validation!.some((issue) => field.test(issue.instancePath) && issue.keyword !== 'required');
    const code = about(RESOURCE_PATH_FIELD) ? 'invalid_resource' : about(/^\/cursor$/) ? 'invalid_cursor' : 'invalid_request';
    return { code, detail: error.message };
  }
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { code: 'payload_too_large', detail: 'The request body is larger than BODY_LIMIT_BYTES allows.' };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { code: 'unsupported_media_type', detail: 'Send the body as application/json.' };
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { code: 'invalid_request', detail: 'Content-Length does not match the body.' };
  }
  if (error instanceof SyntaxError || error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
    return { code: 'invalid_request', detail: `The body is not valid JSON: ${error.message}` };
  }
  const status = error.statusCode ?? 500;
  if (status === 413) return { code: 'payload_too_large', detail: error.message };
  if (status === 415) return { code: 'unsupported_media_type', detail: error.message };
  if (status >= 400 && status < 500) return { code: 'invalid_request', detail: error.message };
  return undefined;
}
