/** Request-level failures, each answered with its HTTP status. */
export type RequestErrorCode =
  | 'bad-request'
  | 'unauthorized'
  | 'forbidden'
  | 'not-found'
  | 'conflict'
  | 'payload-too-large'
  | 'unsupported-media-type'
  | 'too-many-requests'
  | 'store-unavailable'
  | 'server-busy'
  | 'store-gone'
  | 'internal';

/**
 * A wrong command line (the CLI exits 2) or a configuration that stops the start (exit 1);
 * their exit codes are the CLI's business (cli.ts), not an HTTP status.
 */
export type StartErrorCode = 'usage' | 'config';

export type ErrorCode = RequestErrorCode | StartErrorCode;

const STATUS: Record<RequestErrorCode, number> = {
  'bad-request': 400,
  unauthorized: 401,
  forbidden: 403,
  'not-found': 404,
  conflict: 409,
  'payload-too-large': 413,
  'unsupported-media-type': 415,
  'too-many-requests': 429,
  'store-unavailable': 503,
  'server-busy': 503,
  // Unlike store-unavailable, it lasts until an operator acts: no Retry-After.
  'store-gone': 503,
  internal: 500,
};

/**
 * The one error type for request-level failures. Everything the HTTP edge answers with
 * a non-200 status goes through it, so the status, the machine-readable code and the
 * `<winstrom>` envelope are decided in one place (server/envelope.ts).
 * Per-operation problems are never thrown: they are FAILED results of the planner.
 */
export class FlexiError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    // Messages quote input; a quote cut inside a surrogate pair must not make the answer invalid text.
    super((message as string & { toWellFormed(): string }).toWellFormed());
    this.name = 'FlexiError';
    // A start-up error never reaches a client; should one, it is the server's fault.
    this.status = code in STATUS ? STATUS[code as RequestErrorCode] : 500;
  }
}

/**
 * The one answer for "the store cannot take this right now": 503 with Retry-After. `applied`
 * says whether the request is certainly not applied (the usual case) or may have been (a
 * connection lost during the COMMIT); a re-send is safe either way.
 */
export function storeUnavailable(reason: string, applied: 'not applied' | 'unknown' = 'not applied'): FlexiError {
  const message =
    applied === 'unknown'
      ? `The store became unavailable while the batch was being committed (${reason}); it may or may not have been applied. Send it again: what was applied answers SKIPPED.`
      : `The store is unavailable right now (${reason}); the request was not applied and is safe to retry.`;
  return new FlexiError('store-unavailable', message, { 'Retry-After': '1' });
}

export function isFlexiError(err: unknown): err is FlexiError {
  return err instanceof FlexiError;
}
