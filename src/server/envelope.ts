import type { NextFunction, Request, Response } from 'express';
import { FlexiError, isFlexiError, type ErrorCode } from '../errors';
import type { Logger } from '../log';
import { errorDocument, formatOf, type Format } from '../xml/winstrom';
import { answerIn, sendAnswer } from './answer';

/**
 * What a caller not (yet) authenticated learns when the store is gone: that it is, not where its
 * file lives. The log line of the request has the full message.
 */
export const STORE_GONE_PUBLIC = 'The store file was deleted or replaced while the server was running; nothing was applied, and nothing can be until the server is restarted.';

export function sendEnvelope(res: Response, err: FlexiError, format: Format): void {
  sendAnswer(res, { ...answerIn(format, errorDocument(err.message, format), err.status), headers: err.headers });
}

const CLIENT_ERROR_CODES: Readonly<Record<number, ErrorCode>> = {
  400: 'bad-request',
  404: 'not-found',
  413: 'payload-too-large',
  415: 'unsupported-media-type',
};

interface HttpError {
  type?: string;
  limit?: number;
  status?: unknown;
  statusCode?: unknown;
  expose?: unknown;
  message?: unknown;
}

/**
 * Errors raised by body-parser carry a `type`; other middleware (the router decoding a
 * malformed %-escape in a path, for one) raises http-errors with a 4xx `status`. Both are
 * the client's fault: a clear 4xx, never a 500.
 */
function fromMiddleware(err: HttpError | null | undefined): FlexiError | undefined {
  if (!err || typeof err !== 'object') return undefined;
  const known = fromBodyParser(err);
  if (known) return known;
  const status = typeof err.status === 'number' ? err.status : err.statusCode;
  if (typeof status !== 'number' || status < 400 || status > 499) return undefined;
  const code = CLIENT_ERROR_CODES[status] ?? 'bad-request';
  if (err instanceof URIError) return new FlexiError(code, 'The path contains a malformed %-escape (a % must be followed by two hex digits of UTF-8).');
  const detail = err.expose === true && typeof err.message === 'string' && err.message ? `: ${err.message.replace(/[.\s]+$/, '')}` : '';
  return new FlexiError(code, `The request could not be read${detail}; nothing was applied.`);
}

/** Errors raised by body-parser carry a `type`; they are the client's fault, never a 500. */
function fromBodyParser(err: HttpError): FlexiError | undefined {
  switch (err.type) {
    case 'entity.too.large':
      return new FlexiError('payload-too-large', `The body is larger than the limit of ${err.limit} bytes; nothing was applied.`);
    case 'request.aborted':
      return new FlexiError('bad-request', 'The request was aborted before its body was complete; nothing was applied.');
    case 'request.size.invalid':
      return new FlexiError('bad-request', 'The body length does not match Content-Length; nothing was applied.');
    case 'encoding.unsupported':
      return new FlexiError('unsupported-media-type', 'Only the identity, gzip, deflate and br content encodings are accepted.');
    case 'stream.encoding.set':
    case 'stream.not.readable':
      return new FlexiError('bad-request', 'The request body could not be read.');
    default:
      return undefined;
  }
}

/** The one place where an error becomes an answer; internals of unexpected errors stay in the log. */
export function errorHandler(logger: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const format = (res.locals.format as Format | undefined) ?? formatOf(req.path);
    const known = isFlexiError(err) ? err : fromMiddleware(err as HttpError);
    if (known && !res.headersSent) {
      res.locals.error = known.message;
      const shown = known.code === 'store-gone' && !res.locals.principal ? new FlexiError('store-gone', STORE_GONE_PUBLIC) : known;
      sendEnvelope(res, shown, format);
      return;
    }
    if (!known) logger.error('unexpected error', { method: req.method, path: req.path, error: (err as Error)?.stack ?? String(err) });
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendEnvelope(res, new FlexiError('internal', 'An internal error occurred; it has been logged.'), format);
  };
}
