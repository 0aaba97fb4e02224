/**
 * The one error type for request-level failures. Everything the HTTP edge answers with
 * a non-200 status goes through it, so the status, the machine-readable code and the
 * `<winstrom>` envelope are decided in one place (server/envelope.ts).
 * Per-operation problems are never thrown: they are FAILED results of the planner.
 */
export type ErrorCode =
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
  | 'usage'
  | 'config'
  | 'internal';

const STATUS: Record<ErrorCode, number> = {
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
  usage: 2,
  config: 1,
  internal: 500,
};

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
    this.status = STATUS[code];
  }
}

export function isFlexiError(err: unknown): err is FlexiError {
  return err instanceof FlexiError;
}
