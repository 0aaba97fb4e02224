import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { isIP, type AddressInfo } from 'node:net';
import { isAbsolute, join, relative } from 'node:path';
import { BatchExecutor } from '../batch/execute';
import type { Config } from '../config';
import { ROOT_GROUP } from '../domain/principals';
import { FlexiError } from '../errors';
import type { Logger } from '../log';
import { devPkiPaths, ensureDevPki } from '../pki/dev-pki';
import { fingerprintOfCertificate } from '../pki/fingerprint';
import { openStore } from '../store/open-store';
import type { Store } from '../store/store';
import { createApp } from './app';
import { readServerAuth } from './server-auth';
import { AuthThrottle } from './throttle';

export const DEV_CLIENT_LABEL = 'dev client';
const REPO_ROOT = join(__dirname, '..', '..');

export interface RunningServer {
  port: number;
  store: Store;
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
  const sample = join(REPO_ROOT, 'fixtures', 'seed-samples', '08-full-sample-corrected.xml');
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

  const store = await openStore(config.db);
  try {
    if (config.devPki) await registerDevClient(store, readRequired(pki.client, 'dev client certificate'), logger);
  } catch (err) {
    await store.close();
    throw err;
  }
  const executor = new BatchExecutor(store, {
    maxOperations: config.maxOperations,
    hashPolicy: { algorithm: config.passwordHash, pbkdf2Iterations: config.pbkdf2Iterations },
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
      throttle: new AuthThrottle({ maxFailures: config.authMaxFailures, windowMs: config.authFailureWindowMs }),
      logger,
    },
  });

  const server: Server = createServer(
    { ...tls, requestCert: true, rejectUnauthorized: false, ...(clientCa ? { ca: clientCa } : {}) },
    app,
  );
  server.requestTimeout = config.requestTimeoutMs;
  server.headersTimeout = Math.min(config.requestTimeoutMs, 20_000);

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE' ? new FlexiError('config', `Port ${config.port} on ${config.host} is already in use.`) : err);
    });
    server.listen(config.port, config.host, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  const line = curlLine(config, port);
  logger.info('listening', {
    url: `https://${config.host}:${port}`,
    store: store.kind,
    passwordAuth: serverCredentials !== null,
    clientCa: clientCa !== undefined,
  });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      const drained = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), config.shutdownTimeoutMs);
      await drained;
      clearTimeout(timer);
      await store.close();
      logger.info('stopped');
    })());

  return { port, store, curlLine: line, close };
}
