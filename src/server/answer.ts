import type { Response } from 'express';
import { CONTENT_TYPES, type Format } from '../xml/winstrom';

/** Every answer the server gives: its status (200 unless said), type, body and any extra headers. */
export interface Answer {
  status?: number;
  type: string;
  body: string;
  headers?: Readonly<Record<string, string>>;
}

/** An answer in the format of the path: XML, or JSON for `.json`. */
export function answerIn(format: Format, body: string, status?: number): Answer {
  return { type: CONTENT_TYPES[format], body, status };
}

/** The one way answers are written: the status, the headers, then the body as sendText writes it. */
export function sendAnswer(res: Response, answer: Answer): void {
  res.status(answer.status ?? 200);
  for (const [name, value] of Object.entries(answer.headers ?? {})) res.setHeader(name, value);
  sendText(res, answer.type, answer.body);
}

/** Larger answers go out in slices of this many characters. */
const SLICE = 64 * 1024;

/**
 * Sends a text answer (with its Content-Length) a slice at a time, each handed to the socket once
 * the one before has left it. Written in one piece, a large answer sits in the socket's buffer as
 * one chunk until its last byte is out, so nothing could tell a client that reads slowly from one
 * that stopped reading: slice by slice, every slice that leaves is progress, which is what the
 * shutdown (server.ts) waits for. The text is sliced as it is, without a second copy in bytes.
 */
export function sendText(res: Response, type: string, text: string): void {
  res.setHeader('Content-Type', `${type}; charset=utf-8`);
  res.setHeader('Content-Length', Buffer.byteLength(text, 'utf8'));
  if (res.req.method === 'HEAD') {
    res.end();
    return;
  }
  let offset = 0;
  const next = (): void => {
    while (text.length - offset > SLICE) {
      // A connection cut meanwhile never drains: the rest is dropped with the response.
      if (res.destroyed) return;
      let end = offset + SLICE;
      // A surrogate pair cut in two would become two U+FFFD in UTF-8.
      const last = text.charCodeAt(end - 1);
      if (last >= 0xd800 && last <= 0xdbff) end--;
      const slice = text.slice(offset, end);
      offset = end;
      if (!res.write(slice, 'utf8')) {
        res.once('drain', next);
        return;
      }
    }
    res.end(text.slice(offset), 'utf8');
  };
  next();
}
