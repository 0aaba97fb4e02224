import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { isIP, type AddressInfo, type Socket } from 'node:net';
import { isAbsolute, join, relative } from 'node:path';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { BatchExecutor } from '../batch/execute';
import { hashPolicyOf, type Config } from '../config';
import { ROOT_GROUP } from '../domain/principals';
import { FlexiError } from '../errors';
import type { Logger } from '../log';
import { devPkiPaths, ensureDevPki } from '../pki/dev-pki';
import { fingerprintOfCertificate } from '../pki/fingerprint';
import { createMetrics } from '../metrics';
import { isPostgresUrl, openStore } from '../store/open-store';
import type { Store } from '../store/store';
import { webhookFigures } from '../tasks/deliveries';
import { createTaskRunner } from '../tasks/jobs';
import type { TaskRunner } from '../tasks/runner';
import { createApp } from './app';
import { errorDocument } from '../xml/winstrom';
import { PasswordChecks } from './password-checks';
import { readServerAuth } from './server-auth';
import { AuthThrottle } from './throttle';

export const DEV_CLIENT_LABEL = 'dev client';
const REPO_ROOT = join(__dirname, '..', '..');

export interface RunningServer {
  port: number;
  store: Store;
  /** The task runner inside the server (SPEC §10.4); undefined with --no-tasks. */
  tasks?: TaskRunner;
  curlLine: string;
  /** Stops accepting, lets in-flight requests finish (bounded), then closes the store. */
  close(): Promise<void>;
}

function readRequired(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new FlexiError('config', `Cannot read the ${what} ${path}; run "flexi-admin certs init" or put your own file there.`);
  }
}

function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

/** A word for `sh`: as it is when it needs no quoting, else single-quoted. */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The line printed at start: copied into a shell, it applies the corrected full sample. */
export function curlLine(config: Config, port: number): string {
  const pki = devPkiPaths(config.certs);
  // Seed sample 08 with anna's pre-hashed password as a whole digest (fixtures/README.md): it succeeds completely.
  const sample = join(REPO_ROOT, 'fixtures', 'scenario', '01-full-sample-corrected.xml');
  const file = existsSync(sample) ? shown(sample) : 'batch.xml';
  const host = ['0.0.0.0', '::', '127.0.0.1', '::1'].includes(config.host) ? 'localhost' : config.host;
  const authority = isIP(host) === 6 ? `[${host}]` : host;
  const url = `https://${authority}:${port}/admin/batch`;
  return ['curl', '-T', file, url, '--cacert', shown(pki.ca), '-E', shown(pki.client), '--key', shown(pki.clientKey)].map(shellWord).join(' ');
}

/** Registers the dev client once; a fingerprint the operator revoked stays revoked. */
async function registerDevClient(store: Store, clientPem: string, logger: Logger): Promise<void> {
  const fingerprint = fingerprintOfCertificate(clientPem);
  if (await store.addFingerprintIfUnknown({ fingerprint, scope: ROOT_GROUP, label: DEV_CLIENT_LABEL })) {
    logger.info('registered the dev client certificate', { fingerprint, scope: ROOT_GROUP });
  }
}

/** The remote end of a connection; a TLS socket and the TCP socket under it share it. */
function peerOf(socket: Socket): string {
  return `${socket.remoteAddress ?? ''}|${socket.remotePort ?? ''}`;
}

/** Whether `promise` settles within `ms` milliseconds. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const CLIENT_ERRORS: Readonly<Record<string, [string, string]>> = {
  ERR_HTTP_REQUEST_TIMEOUT: ['408 Request Timeout', 'The request did not arrive within the request timeout; nothing was applied.'],
  HPE_HEADER_OVERFLOW: ['431 Request Header Fields Too Large', 'The request headers are too large; nothing was applied.'],
};

/** Errors below HTTP (timeouts, broken requests) still get the Flexi envelope, then the connection closes. */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const [status, message] = CLIENT_ERRORS[err.code ?? ''] ?? ['400 Bad Request', 'The request is not valid HTTP; nothing was applied.'];
  const body = errorDocument(message, 'xml');
  socket.end(
    `HTTP/1.1 ${status}\r\nContent-Type: application/xml; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

const storeKindOf = (db: string): 'sqlite' | 'postgres' => (isPostgresUrl(db) ? 'postgres' : 'sqlite');

export async function startServer(config: Config, logger: Logger): Promise<RunningServer> {
  // Settings that can refuse the start are read first, so a refused start leaves nothing behind.
  const serverCredentials = config.passwordAuth && config.serverAuth ? readServerAuth(config.serverAuth) : null;
  const pki = devPkiPaths(config.certs);
  if (config.devPki) {
    const { created } = ensureDevPki(config.certs);
    if (created.length) logger.info('created development certificates', { folder: config.certs, files: created });
  }
  const clientCa = config.clientCa ? readRequired(config.clientCa, 'client CA file') : undefined;
  const tls = { key: readRequired(pki.serverKey, 'server key'), cert: readRequired(pki.server, 'server certificate') };

  const metrics = createMetrics();
  const store = await openStore(config.db, { poolSize: config.dbPool, onCommit: (seconds) => metrics.storeCommit.observe({ store: storeKindOf(config.db) }, seconds) });
  const passwordChecks = new PasswordChecks({
    store,
    policy: hashPolicyOf(config),
    concurrency: config.passwordCheckConcurrency,
    queue: config.passwordCheckQueue,
    logger,
  });
  try {
    if (config.devPki) await registerDevClient(store, readRequired(pki.client, 'dev client certificate'), logger);
    // Before the first login: its decoy work must already follow the costliest stored form.
    await passwordChecks.load();
  } catch (err) {
    await store.close();
    throw err;
  }
  // Also with --no-tasks: the lag of the store's subscriptions is the store's, whichever process delivers.
  metrics.watchWebhooks(() => webhookFigures(store));
  const tasks = config.tasks ? createTaskRunner({ store, config, logger, metrics }) : undefined;
  const executor = new BatchExecutor(store, {
    maxOperations: config.maxOperations,
    hashPolicy: hashPolicyOf(config),
    onPasswordsWritten: (hashes) => passwordChecks.note(hashes),
    webhookAllowHosts: config.webhookAllowHosts,
  });
  const app = createApp({
    config,
    store,
    executor,
    logger,
    auth: {
      store,
      serverCredentials,
      requireChain: clientCa !== undefined,
      sessionIdleMs: config.sessionIdleMs,
      throttle: new AuthThrottle({
        maxFailures: config.authMaxFailures,
        maxFailuresPerUser: config.authMaxFailuresPerUser,
        windowMs: config.authFailureWindowMs,
      }),
      logger,
      metrics,
    },
    passwordChecks,
    metrics,
    onEventsAnswered: () => tasks?.wake(),
  });

  // Every connection (also one still in its TLS handshake), every TLS connection and every request
  // in progress, so a shutdown can tell a client that is still sending from a batch the server is
  // working on, and an idle connection from one whose answer is still on its way.
  const connections = new Map<Socket, string>();
  const secure = new Set<TLSSocket>();
  const requests = new Map<IncomingMessage, ServerResponse>();
  /** Requests of a connection whose answers have not left the process yet. */
  const exchanges = new Map<Socket, number>();
  /** How much a connection had read when its last exchange ended: more since is a next request arriving. */
  const readWhenIdle = new WeakMap<Socket, number>();
  let stopping = false;
  const isIdle = (socket: Socket): boolean => !exchanges.has(socket) && socket.writableLength === 0 && socket.bytesRead === (readWhenIdle.get(socket) ?? 0);
  const server: Server = createServer(
    {
      ...tls,
      requestCert: true,
      rejectUnauthorized: false,
      // Set here, not left to Node's defaults: those accept static-RSA suites (no forward secrecy),
      // and NODE_OPTIONS=--tls-min-v1.0 would lower the version floor.
      ciphers: config.tlsCiphers,
      minVersion: config.tlsMinVersion,
      ...(clientCa ? { ca: clientCa } : {}),
      // A client that connects and never completes TLS must not hold a socket for Node's default 2 minutes.
      handshakeTimeout: Math.min(config.requestTimeoutMs, 20_000),
      // Node checks request timeouts only this often (30 s by default), so a short timeout needs a short interval.
      connectionsCheckingInterval: Math.min(30_000, Math.max(250, Math.floor(config.requestTimeoutMs / 4))),
    },
    (req, res) => {
      const socket = req.socket;
      requests.set(req, res);
      exchanges.set(socket, (exchanges.get(socket) ?? 0) + 1);
      // 'close' comes after the last byte of the answer has left the process (or the connection broke).
      res.once('close', () => {
        requests.delete(req);
        const left = (exchanges.get(socket) ?? 1) - 1;
        if (left > 0) {
          exchanges.set(socket, left);
          return;
        }
        exchanges.delete(socket);
        readWhenIdle.set(socket, socket.bytesRead);
        // During a shutdown an answered connection is not kept alive for more; end() lets what is written go out first.
        if (stopping) socket.end();
      });
      // During a shutdown every answer closes its connection: a keep-alive client reconnects elsewhere.
      if (stopping) res.shouldKeepAlive = false;
      void app(req, res);
    },
  );
  // A connection's client certificate is read once (authenticate.ts), so it must not change under it.
  server.on('secureConnection', (socket: TLSSocket) => {
    socket.disableRenegotiation();
    secure.add(socket);
    socket.once('close', () => secure.delete(socket));
  });
  server.on('connection', (socket: Socket) => {
    connections.set(socket, peerOf(socket));
    socket.once('close', () => connections.delete(socket));
  });
  /*
   * server.close() calls this. Node's own version counts a connection idle as soon as its request
   * has been read and its answer ended, also while megabytes of that answer still wait in the
   * socket's buffer, and destroys it: the client got a 200 and part of the body. Idle here means
   * no exchange in progress, nothing left to send and no byte of a next request read.
   */
  let closedAsIdle = 0;
  server.closeIdleConnections = (): void => {
    for (const socket of secure) {
      if (isIdle(socket)) {
        socket.destroy();
        closedAsIdle++;
      }
    }
  };
  server.on('clientError', answerClientError);
  server.requestTimeout = config.requestTimeoutMs;
  server.headersTimeout = Math.min(config.requestTimeoutMs, 20_000);

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE' ? new FlexiError('config', `Port ${config.port} on ${config.host} is already in use.`) : err);
    });
    server.listen(config.port, config.host, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  tasks?.start();
  const line = curlLine(config, port);
  logger.info('listening', {
    url: `https://${config.host}:${port}`,
    store: store.kind,
    passwordAuth: serverCredentials !== null,
    clientCa: clientCa !== undefined,
  });

  /**
   * Graceful shutdown, bounded:
   * 1. Stop accepting; idle keep-alive connections close; answers from now on say `Connection: close`;
   *    requests in progress get the shutdown timeout to finish.
   * 2. At the timeout, the connections of clients that have not sent their whole request (a slow
   *    body, a stalled TLS handshake, idle keep-alive) are cut: nothing of theirs was applied.
   *    Batches already received are never cut off half-way: they finish, commit and are answered.
   * 3. Once they are, an answer is delivered whole however long it takes while its client reads;
   *    a connection whose answer makes no progress for the shutdown timeout (at least 1 s: its
   *    client stopped reading) is cut. Its batch stays committed, the result in the journal.
   * 4. Close the store.
   */
  const stop = async (): Promise<void> => {
    stopping = true;
    for (const res of requests.values()) if (!res.headersSent) res.shouldKeepAlive = false;
    const drained = new Promise<void>((resolve) => server.close(() => resolve()));
    const inProgress = [...requests.entries()];
    logger.info('stopped listening', {
      idleClosed: closedAsIdle,
      receiving: inProgress.filter(([req]) => !req.complete).length,
      working: inProgress.filter(([req, res]) => req.complete && !res.headersSent).length,
      sending: inProgress.filter(([, res]) => res.headersSent).length,
    });
    if (!(await settlesWithin(drained, config.shutdownTimeoutMs))) {
      const stopped = executor.stopAccepting();
      const received = new Set([...requests.keys()].filter((req) => req.complete).map((req) => peerOf(req.socket)));
      let cut = 0;
      for (const [socket, peer] of connections) {
        if (!received.has(peer)) {
          socket.destroy();
          cut++;
        }
      }
      logger.warn('shutdown timeout: closed the connections of unfinished requests', { connections: cut, answering: received.size });
      await stopped;
      // At least a second: 0 would switch the socket timeout off, and a client needs a moment to read at all.
      const stalledMs = Math.max(config.shutdownTimeoutMs, 1000);
      for (const socket of secure) {
        if (socket.destroyed) continue;
        // Node counts every write that completes (and every read) as activity; sendText makes each slice one.
        socket.setTimeout(stalledMs);
        // Before the HTTP server's own listener, which destroys the socket too, so the log still sees what was left.
        socket.prependOnceListener('timeout', () => {
          logger.warn('shutdown: closed a connection that made no progress for the shutdown timeout', { unsentBytes: socket.writableLength });
          socket.destroy();
        });
      }
      await drained;
    }
    await executor.stopAccepting();
    // The runner finishes its delivery in flight and gives its lease up for another runner.
    await tasks?.stop();
    await store.close();
    logger.info('stopped');
  };
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => (closing ??= stop());

  return { port, store, tasks, curlLine: line, close };
}
