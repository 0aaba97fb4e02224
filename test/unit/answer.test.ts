import express from 'express';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sendText } from '../../src/server/answer';

/** sendText over a real (plain HTTP) server: what arrives is the text, byte for byte, with the right Content-Length. */
describe('sendText', () => {
  let server: Server;
  let text = '';
  beforeAll(async () => {
    const app = express();
    app.get('/text', (_req, res) => sendText(res, 'application/xml', text));
    server = createServer(app);
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  });
  afterAll(() => new Promise<void>((done) => server.close(() => done())));

  const fetch = (method: string): Promise<{ headers: Record<string, unknown>; body: Buffer }> =>
    new Promise((done, fail) => {
      request({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, path: '/text', method }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => done({ headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', fail);
      })
        .on('error', fail)
        .end();
    });

  test.each([
    ['empty', ''],
    ['short', '<a>é</a>'],
    ['many slices of ASCII', 'x'.repeat(64 * 1024 * 5 + 17)],
    ['surrogate pairs across every slice boundary', '😀'.repeat(64 * 1024 * 3)],
    ['a pair straddling the first boundary', `${'x'.repeat(64 * 1024 - 1)}😀${'y'.repeat(70_000)}`],
  ])('when the text is %s, then the body is its UTF-8 bytes and Content-Length their number', async (_what, value) => {
    text = value;
    const res = await fetch('GET');
    expect(res.headers['content-type']).toBe('application/xml; charset=utf-8');
    expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(value));
    expect(res.body.equals(Buffer.from(value, 'utf8'))).toBe(true);
  });

  test('when the request is HEAD, then the headers say the length and no body follows', async () => {
    text = 'x'.repeat(100_000);
    const res = await fetch('HEAD');
    expect(Number(res.headers['content-length'])).toBe(100_000);
    expect(res.body.length).toBe(0);
  });
});
