// Value schemas without a domain of their own: a time, and any JSON a client sends.
import { Type } from '@sinclair/typebox';

export const Timestamp = (description: string) => Type.String({ format: 'date-time', description, examples: ['2026-11-24T10:00:00.000Z'] });

export const JsonValue = (description: string) => Type.Unknown({ description, examples: [{ flavor: 'm1.large' }] });
