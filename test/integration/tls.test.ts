import { readFileSync } from 'node:fs';
import { connect, type ConnectionOptions } from 'node:tls';
import { runCli } from '../support/cli';
import { startTestServer, type TestServer } from '../support/server';

/**
 * Issue #9, point 9: the TLS the server speaks. By default Mozilla's "intermediate" profile:
 * TLS 1.2 only with ECDHE and AEAD suites (forward secrecy; no static RSA key exchange, no
 * CBC), TLS 1.3 as OpenSSL ships it. `--tls-ciphers` and `--tls-min-version` change it.
 */

type Handshake = { protocol: string | null; cipher: string } | { refused: string };

/** One TLS handshake with the dev client's certificate, offering only what `offer` allows. */
function handshake(server: TestServer, offer: ConnectionOptions): Promise<Handshake> {
  return new Promise((done) => {
    const socket = connect({
      host: '127.0.0.1',
      servername: 'localhost',
      port: server.port,
      ca: readFileSync(server.pki.ca),
      cert: readFileSync(server.pki.client),
      key: readFileSync(server.pki.clientKey),
      ...offer,
    });
    socket.once('secureConnect', () => {
      const result = { protocol: socket.getProtocol(), cipher: socket.getCipher().name };
      socket.end();
      done(result);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => done({ refused: err.code ?? err.message }));
  });
}

/** The server's handshake_failure alert: the client offered it nothing it accepts (a client that refused itself would say so differently). */
const REFUSED = { refused: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' };

const tls12 = (ciphers: string): ConnectionOptions => ({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers });

describe('TLS with the default settings (Mozilla intermediate)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());

  test.each(['AES128-SHA', 'AES256-SHA', 'AES128-GCM-SHA256', 'AES256-GCM-SHA384', 'AES128-SHA256'])(
    'when a TLS 1.2 client offers only the static-RSA suite %s, then the handshake is refused',
    async (suite) => {
      expect(await handshake(server, tls12(suite))).toEqual(REFUSED);
    },
  );

  test.each(['ECDHE-RSA-AES128-SHA', 'ECDHE-RSA-AES256-SHA384'])('when a TLS 1.2 client offers only the CBC suite %s, then the handshake is refused', async (suite) => {
    expect(await handshake(server, tls12(suite))).toEqual(REFUSED);
  });

  test.each(['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305'])(
    'when a TLS 1.2 client offers only %s, then the handshake succeeds with it',
    async (suite) => {
      expect(await handshake(server, tls12(suite))).toEqual({ protocol: 'TLSv1.2', cipher: suite });
    },
  );

  test('when a client offers a static-RSA suite before an ECDHE one, then the ECDHE suite is chosen', async () => {
    expect(await handshake(server, tls12('AES256-SHA:AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256'))).toEqual({ protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256' });
  });

  test('when a client speaks TLS 1.3, then the handshake succeeds with TLS 1.3', async () => {
    expect(await handshake(server, { minVersion: 'TLSv1.3' })).toEqual({ protocol: 'TLSv1.3', cipher: expect.stringMatching(/^TLS_/) });
  });

  test('when a client completes the handshake, then a request over it is served as before', async () => {
    const res = await server.request('GET', '/status.json', { client: null });
    expect(res.status).toBe(200);
  });
});

describe('TLS with --tls-ciphers and --tls-min-version', () => {
  test('when --tls-ciphers names one suite, then only that suite is accepted at TLS 1.2', async () => {
    const server = await startTestServer({ tlsCiphers: 'ECDHE-RSA-AES256-GCM-SHA384' });
    try {
      expect(await handshake(server, tls12('ECDHE-RSA-AES128-GCM-SHA256'))).toEqual(REFUSED);
      expect(await handshake(server, tls12('ECDHE-RSA-AES256-GCM-SHA384'))).toEqual({ protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES256-GCM-SHA384' });
    } finally {
      await server.close();
    }
  });

  test('when --tls-min-version is TLSv1.3, then a TLS 1.2 client is refused and a TLS 1.3 client served', async () => {
    const server = await startTestServer({ tlsMinVersion: 'TLSv1.3' });
    try {
      expect(await handshake(server, tls12('ECDHE-RSA-AES128-GCM-SHA256'))).toEqual({ refused: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
      expect(await handshake(server, {})).toEqual({ protocol: 'TLSv1.3', cipher: expect.stringMatching(/^TLS_/) });
    } finally {
      await server.close();
    }
  });

  test.each([
    ['an unknown name', ['--tls-ciphers', 'ECDHE-RSA-AES128-GCM-SHA256:NO-SUCH-SUITE'], /^flexi-admin: tls-ciphers '.*' is not usable: 'NO-SUCH-SUITE' is not known to OpenSSL/],
    ['a list that leaves nothing', ['--tls-ciphers', 'ECDHE-RSA-AES128-GCM-SHA256:!ECDHE'], /^flexi-admin: tls-ciphers '.*' is not usable: it leaves no cipher suite/],
    ['an empty list', ['--tls-ciphers', ''], /^flexi-admin: tls-ciphers must name at least one cipher suite/],
    ['TLS 1.1 as the minimum', ['--tls-min-version', 'TLSv1.1'], /^flexi-admin: tls-min-version must be one of TLSv1.2, TLSv1.3, not 'TLSv1.1'/],
  ])('when serve is given %s, then it stops at once with a one-line reason and exit 2', async (_what, args, message) => {
    const result = await runCli(['serve', '--port', '0', '--host', '127.0.0.1', '--db', ':memory:', ...args]);
    expect({ code: result.code, lines: result.stderr.trim().split('\n') }).toEqual({ code: 2, lines: [expect.stringMatching(message)] });
  });
});
