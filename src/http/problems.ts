// Every error leaves as application/problem+json with a code from src/errors.ts: our own
// ProblemErrors, Fastify's validation, body-size, content-type and not-found errors, and
// Redis being unreachable (503 with Retry-After). Nothing a client sends becomes a 500.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { problem, ProblemError, type Problem, type ProblemCode } from '../errors.js';
import { isBackendUnavailable } from '../redis/connection.js';

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

export function installProblemHandling(app: FastifyInstance): void {
  // JSON only: without the text/plain parser a text body gets 415, not a confusing 400.
  app.removeContentTypeParser('text/plain');
  // An empty body on a POST whose fields are all optional (renew, release) means "{}".
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if ((body as string).trim() === '') return done(null, {});
    parseJson(request, body as string, done);
  });
  app.addHook('preValidation', async (request) => {
    if (request.body === undefined && request.method === 'POST') request.body = {};
  });

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
    request.log.error({ err: error }, 'unexpected error');
    return sendProblem(reply, problem('internal_error', 'The service failed to handle this request; it has been logged.'));
  });
}

function describeUnavailable(error: Error): string {
  if (/timed out/i.test(error.message)) {
    return (
      'Redis did not answer in time. A call that reaches Redis after its deadline changes nothing; retry shortly ' +
      '(an acquire with the same requestId is safe to retry and returns the lease if it was granted after all).'
    );
  }
  return 'Redis cannot be reached; this request was not sent to it and changed nothing. Retry shortly.';
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
