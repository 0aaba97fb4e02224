import type { NextFunction, Request, Response } from 'express';
import type { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { FlexiError } from '../errors';

const XML_TYPES = /^(application|text)\/(xml|[\w.+-]+\+xml)$/i;

/** `application/xml`, `text/xml` and any `…+xml` type (without parameters). */
export function isXmlType(type: string): boolean {
  return XML_TYPES.test(type);
}

/** Content codings a client may compress the body with; the limit applies to the decompressed bytes. */
const DECODERS: Readonly<Record<string, () => Readable & NodeJS.WritableStream>> = {
  gzip: createGunzip,
  'x-gzip': createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};

function tooLarge(limit: number, decompressed = false): FlexiError {
  const once = decompressed ? ' once decompressed' : '';
  return new FlexiError('payload-too-large', `The body is larger than the limit of ${limit} bytes${once}; nothing was applied.`);
}

/**
 * Reads the whole body into one Buffer, refusing it with 413 as soon as it passes `limit`
 * bytes (a declared Content-Length over the limit is refused before a byte is read), so the
 * answer does not wait for an over-long or endless upload. What the client still sends after
 * the answer is read and thrown away by Node until the request ends or the server's request
 * timeout cuts the connection; nothing of it is kept.
 */
function readBody(req: Request, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const coding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase() || 'identity';
    const makeDecoder = coding === 'identity' ? undefined : DECODERS[coding];
    if (coding !== 'identity' && !makeDecoder) {
      reject(new FlexiError('unsupported-media-type', `The body's Content-Encoding must be identity, gzip, deflate or br, not ${coding}.`));
      return;
    }
    const declared = req.headers['content-length'];
    if (!makeDecoder && declared !== undefined && Number(declared) > limit) {
      // Drained and thrown away, not left unread: else Node may close the socket under a
      // client that is still writing, and it never sees the 413.
      req.resume();
      reject(tooLarge(limit));
      return;
    }
    const decoder = makeDecoder?.();
    const source: Readable = decoder ?? req;
    const chunks: Buffer[] = [];
    let size = 0;
    let received = 0;
    let settled = false;

    const finish = (err?: FlexiError): void => {
      if (settled) return;
      settled = true;
      source.removeListener('data', onData);
      source.removeListener('end', onEnd);
      req.removeListener('close', onClose);
      if (decoder) {
        req.removeListener('data', onReceived);
        req.unpipe(decoder);
        decoder.destroy();
      }
      // Whatever is still coming (after an error, or after the end of a compressed stream) is
      // read and thrown away, so the connection stays usable for the answer.
      if (!req.complete) req.resume();
      if (err) {
        chunks.length = 0;
        reject(err);
      } else {
        resolve(Buffer.concat(chunks, size));
      }
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) finish(tooLarge(limit, decoder !== undefined));
      else chunks.push(chunk);
    };
    const onReceived = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > limit) finish(tooLarge(limit));
    };
    const onEnd = (): void => finish();
    const onClose = (): void => {
      if (!req.complete) finish(new FlexiError('bad-request', 'The request was aborted before its body was complete; nothing was applied.'));
    };

    source.on('data', onData);
    source.once('end', onEnd);
    req.once('close', onClose);
    if (decoder) {
      decoder.on('error', () => {
        finish(new FlexiError('bad-request', `The body is not valid ${coding} data although Content-Encoding says so; nothing was applied.`));
      });
      req.on('data', onReceived);
      req.pipe(decoder);
    }
    req.once('error', () => finish(new FlexiError('bad-request', 'The request body could not be read; nothing was applied.')));
  });
}

/**
 * An answer given before the client has sent its whole body (a 413, say) would otherwise close
 * the connection at once when the client asked for `Connection: close`: the client, still
 * writing, then meets a reset (EPIPE or ECONNRESET) and may lose the answer that explains it.
 * So the connection stays open after such an answer while the rest of the body is read and
 * thrown away (readBody resumed the request); the client closes it when it is done, and an
 * endless upload is still cut by the server's request timeout (and a shutdown by its own).
 */
function lingerWhileUploading(req: Request, res: Response): void {
  if (!req.complete && !res.headersSent) res.shouldKeepAlive = true;
}

/**
 * `curl -T` sends no Content-Type, so none is required; a declared type must be XML and the
 * charset, if named, UTF-8. The size limit is enforced while reading, before any parsing.
 */
export function xmlBody(limit: number) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const declared = req.headers['content-type'];
    if (declared !== undefined && declared.trim() !== '') {
      const [type, ...params] = declared.split(';').map((p) => p.trim());
      if (!isXmlType(type)) {
        next(new FlexiError('unsupported-media-type', `The body must be XML (application/xml or text/xml), not ${type}; curl -T sends it right.`));
        return;
      }
      const charset = params.find((p) => /^charset=/i.test(p))?.split('=')[1]?.replace(/"/g, '');
      if (charset && !/^utf-?8$/i.test(charset)) {
        next(new FlexiError('unsupported-media-type', `The body must be UTF-8, not ${charset}.`));
        return;
      }
    }
    readBody(req, limit).then(
      (body) => {
        req.body = body;
        next();
      },
      (err: unknown) => {
        lingerWhileUploading(req, res);
        next(err);
      },
    );
  };
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629), or -1. */
export function invalidUtf8Offset(bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    const trailing = b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : 0;
    if (!trailing) return i;
    // The second byte's range also rules out overlong forms, surrogates and code points past U+10FFFF.
    const low = b === 0xe0 ? 0xa0 : b === 0xf0 ? 0x90 : 0x80;
    const high = b === 0xed ? 0x9f : b === 0xf4 ? 0x8f : 0xbf;
    if (i + 1 >= bytes.length || bytes[i + 1] < low || bytes[i + 1] > high) return i;
    for (let k = 2; k <= trailing; k++) if (i + k >= bytes.length || (bytes[i + k] & 0xc0) !== 0x80) return i;
    i += trailing + 1;
  }
  return -1;
}

/** UTF-16 or UTF-32, by byte order mark or by the zero bytes around the first '<'. */
function wideEncoding(body: Buffer): string | undefined {
  if (body.length >= 4 && body.readUInt32BE(0) === 0x0000feff) return 'UTF-32BE';
  if (body.length >= 4 && body.readUInt32LE(0) === 0x0000feff) return 'UTF-32LE';
  if (body.length >= 2 && body[0] === 0xfe && body[1] === 0xff) return 'UTF-16BE';
  if (body.length >= 2 && body[0] === 0xff && body[1] === 0xfe) return 'UTF-16LE';
  if (body.length >= 2 && body[0] === 0x00 && body[1] !== 0x00) return 'UTF-16BE';
  if (body.length >= 2 && body[0] !== 0x00 && body[1] === 0x00) return 'UTF-16LE';
  return undefined;
}

/** The body as text: refused when empty, in UTF-16/32 (415) or not valid UTF-8 (400). A UTF-8 BOM is dropped. */
export function bodyText(req: Request): string {
  const body: unknown = req.body;
  if (!Buffer.isBuffer(body) || body.length === 0) throw new FlexiError('bad-request', 'The request has no body; send the batch XML (curl -T batch.xml …).');
  const wide = wideEncoding(body);
  if (wide) throw new FlexiError('unsupported-media-type', `The body looks like ${wide}; only UTF-8 is accepted. Send the batch in UTF-8.`);
  try {
    return utf8.decode(body);
  } catch {
    const at = invalidUtf8Offset(body);
    const where = at >= 0 ? ` (byte 0x${body[at].toString(16).toUpperCase().padStart(2, '0')} at offset ${at})` : '';
    throw new FlexiError('bad-request', `The body is not valid UTF-8${where}; send the batch in UTF-8. Nothing was applied.`);
  }
}
