// The CLI's exit codes: what a script can branch on. One table, used by every command and
// printed in `lease --help`, so the documentation cannot drift from the behaviour.
import { BackendUnavailableError, LeaseServiceError } from '../client/errors.js';

export const EXIT = {
  ok: 0,
  /** Usage errors (commander's own, and arguments the CLI checks itself) and anything unexpected. */
  error: 1,
  /** The service refused the request (4xx other than 404/410): a conflict, a bad path, ... */
  refused: 2,
  /** Not found or gone: 404 (no such lease or orphan), 410 (the lease has ended), no orphan to claim. */
  notFound: 3,
  /** The service or its Redis cannot answer: 503, 502/504, or no answer at all. */
  unavailable: 4,
  /** `lease run`: the lease was lost while the command ran; the command was stopped. */
  leaseLost: 75,
} as const;

export const EXIT_CODES_HELP = `
Exit codes:
  0    ok
  1    usage error, or an unexpected error
  2    the service refused the request (4xx), e.g. conflict, invalid_resource, orphan_claimed
  3    not found or gone: no such lease or orphan (404), the lease has ended (410), no orphan to claim
  4    the service or its Redis is unavailable (503), or it could not be reached
  75   run: the lease was lost while the command ran (the command was stopped: SIGTERM, then SIGKILL)
  run otherwise exits with the command's own code (128+N when a signal N ended it; 126/127 when it
  could not be started); watch exits 0 on Ctrl-C.
Errors print the problem's code and detail on stderr (with --json, the problem JSON itself).`;

/** A usage error found by the CLI itself (exit 1), e.g. a grace too long for the ttl. */
export class UsageError extends Error {
  readonly code = 'usage';
}

/** A request that found nothing to act on without the service answering 404 (exit 3), e.g. no orphan to claim. */
export class NothingFoundError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function exitCodeOf(error: unknown): number {
  if (error instanceof BackendUnavailableError) return EXIT.unavailable;
  if (error instanceof NothingFoundError) return EXIT.notFound;
  if (error instanceof LeaseServiceError) {
    if (error.status === 404 || error.status === 410) return EXIT.notFound;
    if (error.status >= 400 && error.status < 500) return EXIT.refused;
    return EXIT.error;
  }
  return EXIT.error;
}
