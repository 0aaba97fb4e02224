import type { NextFunction, Request, Response } from 'express';
import { escapeXml } from '../batch/render';
import { FlexiError, isFlexiError } from '../errors';
import type { Logger } from '../log';

export type Format = 'xml' | 'json';

export function formatOf(path: string): Format {
  return path.endsWith('.json') ? 'json' : 'xml';
}

export function renderEnvelope(message: string, format: Format): string {
  if (format === 'json') return `${JSON.stringify({ winstrom: { '@version': '1.0', success: false, message } })}\n`;
  return `<?xml version="1.0" encoding="UTF-8"?>\n<winstrom version="1.0"><success>false</success><message>${escapeXml(message)}</message></winstrom>\n`;
}

export function sendEnvelope(res: Response, err: FlexiError, format: Format): void {
  res.status(err.status);
  for (const [name, value] of Object.entries(err.headers)) res.setHeader(name, value);
  res.type(format === 'json' ? 'application/json' : 'application/xml');
  res.send(renderEnvelope(err.message, format));
}

/** Errors raised by body-parser carry a `type`; they are the client's fault, never a 500. */
function fromBodyParser(err: { type?: string; limit?: number }): FlexiError | undefined {
  switch (err.type) {
    case 'entity.too.large':
      return new FlexiError('payload-too-large', `The body is larger than the limit of ${err.limit} bytes; nothing was applied.`);
    case 'request.aborted':
      return new FlexiError('bad-request', 'The request was aborted before its body was complete; nothing was applied.');
    case 'request.size.invalid':
      return new FlexiError('bad-request', 'The body length does not match Content-Length; nothing was applied.');
    case 'encoding.unsupported':
      return new FlexiError('unsupported-media-type', 'Only identity, gzip and deflate content encodings are accepted.');
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
    const known = isFlexiError(err) ? err : fromBodyParser(err as { type?: string });
    if (known) {
      res.locals.error = known.message;
      sendEnvelope(res, known, format);
      return;
    }
    logger.error('unexpected error', { method: req.method, path: req.path, error: (err as Error)?.stack ?? String(err) });
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendEnvelope(res, new FlexiError('internal', 'An internal error occurred; it has been logged.'), format);
  };
}
