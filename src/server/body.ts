import express, { type NextFunction, type Request, type Response } from 'express';
import { FlexiError } from '../errors';

const XML_TYPES = /^(application|text)\/(xml|[\w.+-]+\+xml)$/i;

/**
 * `curl -T` sends no Content-Type, so none is required; a declared type must be XML and the
 * charset, if named, UTF-8. The size limit is enforced while reading, before any parsing.
 */
export function xmlBody(limit: number) {
  const raw = express.raw({ type: () => true, limit });
  return (req: Request, res: Response, next: NextFunction): void => {
    const declared = req.headers['content-type'];
    if (declared !== undefined && declared.trim() !== '') {
      const [type, ...params] = declared.split(';').map((p) => p.trim());
      if (!XML_TYPES.test(type)) {
        next(new FlexiError('unsupported-media-type', `The body must be XML (application/xml or text/xml), not ${type}; curl -T sends it right.`));
        return;
      }
      const charset = params.find((p) => /^charset=/i.test(p))?.split('=')[1]?.replace(/"/g, '');
      if (charset && !/^utf-?8$/i.test(charset)) {
        next(new FlexiError('unsupported-media-type', `The body must be UTF-8, not ${charset}.`));
        return;
      }
    }
    raw(req, res, next);
  };
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

export function bodyText(req: Request): string {
  const body: unknown = req.body;
  if (!Buffer.isBuffer(body) || body.length === 0) throw new FlexiError('bad-request', 'The request has no body; send the batch XML (curl -T batch.xml …).');
  try {
    return utf8.decode(body);
  } catch {
    throw new FlexiError('bad-request', 'The body is not valid UTF-8.');
  }
}
