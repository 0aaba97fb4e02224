import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULTS, type Config } from '../../src/config';
import { createLogger } from '../../src/log';
import { devPkiPaths, ensureDevPki, type DevPkiPaths } from '../../src/pki/dev-pki';
import { startServer, type RunningServer } from '../../src/server/server';
import { dropTestDb, newTestDb } from './stores';
import { assertValidXml } from './xmllint';

let cachedPki: string | undefined;

/** One dev PKI per test process (forge signing is slow), copied into each server's folder. */
export function freshPkiDir(): string {
  if (!cachedPki) {
    cachedPki = mkdtempSync(join(tmpdir(), 'flexi-pki-cache-'));
    ensureDevPki(cachedPki);
  }
  const dir = mkdtempSync(join(tmpdir(), 'flexi-certs-'));
  cpSync(cachedPki, dir, { recursive: true });
  return dir;
}

export interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface RequestOptions {
  body?: string | Buffer;
  headers?: Record<string, string>;
  /** Client certificate and key (PEM); defaults to the dev client. `null` sends none. */
  client?: { cert: string; key: string } | null;
  /** Skip schema validation of the answer (for deliberately broken exchanges). */
  raw?: boolean;
  /** Source address of the connection (e.g. another loopback address such as 127.0.0.2); the system picks one by default. */
  localAddress?: string;
}

export interface TestServer {
  url: string;
  port: number;
  dir: string;
  db: string;
  pki: DevPkiPaths;
  config: Config;
  logs: string[];
  running: RunningServer;
  request(method: string, path: string, options?: RequestOptions): Promise<Response>;
  /** PUT /admin/batch with the dev client; the answer is validated against the schemas. */
  batch(xml: string, options?: RequestOptions): Promise<Response>;
  close(): Promise<void>;
}

/** Checks every answer the tests receive: results against batch-result.xsd, errors against winstrom-error.xsd. */
export function validateAnswer(method: string, path: string, res: Response): void {
  const type = String(res.headers['content-type'] ?? '');
  if (!type.includes('xml')) return;
  if (res.status >= 400) {
    assertValidXml(res.body, 'winstrom-error');
  } else if (path.startsWith('/admin/batch') || path.startsWith('/v2/admin/batch')) {
    assertValidXml(res.body, 'batch-result');
    for (const entry of res.body.match(/<entry [^]*?<\/entry>/g) ?? []) {
      if (entry.includes('<status>FAILED</status>') && !entry.includes('<message>')) {
        throw new Error(`${method} ${path}: a FAILED entry has no message: ${entry}`);
      }
    }
  }
}

export function httpsCall(port: number, ca: string, method: string, path: string, options: RequestOptions, defaultClient: { cert: string; key: string } | null): Promise<Response> {
  const client = options.client === undefined ? defaultClient : options.client;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port,
        method,
        path,
        ca,
        agent: false,
        headers: options.headers,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
        ...(client ? { cert: client.cert, key: client.key } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export async function startTestServer(overrides: Partial<Config> = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'flexi-server-'));
  const certs = freshPkiDir();
  // Rejection-heavy suites would trip the failed-login throttle; throttling tests lower it again.
  const config: Config = {
    ...DEFAULTS,
    host: '127.0.0.1',
    port: 0,
    db: overrides.db ?? newTestDb(dir),
    certs,
    logLevel: 'debug',
    authMaxFailures: 10_000,
    authMaxFailuresPerUser: 10_000,
    ...overrides,
  };
  const logs: string[] = [];
  let running: RunningServer;
  try {
    running = await startServer(config, createLogger(config.logLevel, (line) => void logs.push(line)));
  } catch (err) {
    if (!overrides.db) dropTestDb(config.db);
    throw err;
  }
  const pki = devPkiPaths(certs);
  const ca = readFileSync(pki.ca, 'utf8');
  const devClient = { cert: readFileSync(pki.client, 'utf8'), key: readFileSync(pki.clientKey, 'utf8') };
  const request = async (method: string, path: string, options: RequestOptions = {}): Promise<Response> => {
    const res = await httpsCall(running.port, ca, method, path, options, devClient);
    if (!options.raw) validateAnswer(method, path, res);
    return res;
  };
  return {
    url: `https://localhost:${running.port}`,
    port: running.port,
    dir,
    db: config.db,
    pki,
    config,
    logs,
    running,
    request,
    batch: (xml, options = {}) => request('PUT', '/admin/batch', { ...options, body: xml }),
    close: async () => {
      await running.close();
      if (!overrides.db) dropTestDb(config.db);
      rmSync(dir, { recursive: true, force: true });
      rmSync(certs, { recursive: true, force: true });
    },
  };
}

/** `[id, status, message?]` of every entry of a result document, in order. */
export function entries(xml: string): Array<{ type: string; action: string; id: string; status: string; message?: string }> {
  const out = [];
  for (const m of xml.matchAll(/<entry type="([^"]*)" action="([^"]*)" id="([^"]*)"><status>([A-Z]+)<\/status>(?:<message>([^<]*)<\/message>)?<\/entry>/g)) {
    out.push({ type: m[1], action: m[2], id: m[3], status: m[4], ...(m[5] !== undefined ? { message: decodeXml(m[5]) } : {}) });
  }
  return out;
}

function decodeXml(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/g, (_, e: string) =>
    e.startsWith('#x') ? String.fromCodePoint(parseInt(e.slice(2), 16))
    : e.startsWith('#') ? String.fromCodePoint(Number(e.slice(1)))
    : (({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }) as Record<string, string>)[e],
  );
}

export function statuses(xml: string): string[] {
  return entries(xml).map((e) => e.status);
}
