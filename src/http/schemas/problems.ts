// The problem+json views of the OpenAPI document: the RFC 9457 fields, and the responses
// of the statuses any route may answer, described from the error catalogue.
import { Type, type TSchema } from '@sinclair/typebox';
import { describeStatus, type Problem } from '../../errors.js';
import { named, refResponse } from './components.js';
import { PROBLEM_EXAMPLES, type CommonProblemStatus } from '../examples.js';

export const problemFields = {
  type: Type.String({ description: 'A URI naming the problem type.' }),
  title: Type.String({ description: 'A short human summary of the problem type.' }),
  status: Type.Integer({ description: 'The HTTP status.' }),
  detail: Type.String({ description: 'What went wrong with this request, for humans.' }),
  code: Type.String({ description: 'Stable machine-readable code.', examples: ['invalid_request'] }),
};

export const ProblemView = named(
  'Problem',
  Type.Object(problemFields, {
    additionalProperties: true,
    description: 'An RFC 9457 problem (application/problem+json).',
  }),
);

/** Response map for the errors any route may answer, each with its example of PROBLEM_EXAMPLES. */
export function problemResponses(...statuses: CommonProblemStatus[]): Record<number, TSchema> {
  const responses: Record<number, TSchema> = {};
  for (const status of statuses) responses[status] = problemResponse(describeStatus(status), PROBLEM_EXAMPLES[status]);
  return responses;
}

/** A problem+json response with its own description and example. */
export function problemResponse(description: string, example: Problem): TSchema {
  return refResponse(ProblemView, { description, examples: [example] });
}
