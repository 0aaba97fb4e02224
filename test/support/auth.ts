import { createHash, pbkdf2Sync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RequestOptions, Response, TestServer } from './server';

/** The one body every authentication refusal carries (SPEC §2: the same whatever was wrong). */
export const REFUSED = 'Authentication failed: present a registered client certificate, valid server credentials or a live session.';
export const SERVER_USER = 'flexi-server-admin';
export const SERVER_PASSWORD = 'a-very-secret-and-very-long-password';

export const basic = (user: string, password: string): Record<string, string> => ({
  Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});

/** Writes a server-auth file (Java-properties XML, as in SPEC §2) into a fresh temp folder; returns its path. */
export function writeServerAuth(user = SERVER_USER, password = SERVER_PASSWORD): string {
  const file = join(mkdtempSync(join(tmpdir(), 'flexi-server-auth-')), 'server-auth.xml');
  writeFileSync(
    file,
    `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE properties SYSTEM "http://java.sun.com/dtd/properties.dtd">
<properties>
<comment>server configuration</comment>
<entry key="username">${user}</entry>
<entry key="password">${password}</entry>
</properties>
`,
  );
  return file;
}

export type Algorithm = 'sha256' | 'sha512' | 'sha1' | 'md5' | 'pbkdf2';
export const ALGORITHMS: readonly Algorithm[] = ['sha256', 'sha512', 'sha1', 'md5', 'pbkdf2'];

/**
 * The digest of SPEC §4.3, computed here with node:crypto and nothing of the project:
 * hex(ALG(SALT + ":" + password)), or PBKDF2-HMAC-SHA256(password, SALT, N, 32 bytes).
 */
export function digestOf(algorithm: Algorithm, salt: string, password: string, iterations = 1000): string {
  if (algorithm === 'pbkdf2') return pbkdf2Sync(password, salt, iterations, 32, 'sha256').toString('hex');
  return createHash(algorithm).update(`${salt}:${password}`, 'utf8').digest('hex');
}

/** A pre-hashed `<password>` element of SPEC §4.3. */
export function preHashedPassword(algorithm: Algorithm, salt: string, password: string, iterations = 1000): string {
  const extra = algorithm === 'pbkdf2' ? ` iterations="${iterations}"` : '';
  return `<password hash="${algorithm}" salt="${salt}"${extra}>${digestOf(algorithm, salt, password, iterations)}</password>`;
}

/** Checks a stored form `ALG:SALT:HEX` / `pbkdf2:N:SALT:HEX` against a plain password, independently of the project. */
export function storedHashMatches(stored: string, password: string): boolean {
  const parts = stored.split(':');
  if (parts[0] === 'pbkdf2') {
    const [, iterations, salt, hex] = parts;
    return parts.length === 4 && digestOf('pbkdf2', salt, password, Number(iterations)) === hex;
  }
  const [algorithm, salt, hex] = parts;
  return parts.length === 3 && digestOf(algorithm as Algorithm, salt, password) === hex;
}

export function loginJson(server: TestServer, username: string, password: string, options: RequestOptions = {}): Promise<Response> {
  return server.request('POST', '/login-logout/login', {
    client: null,
    ...options,
    headers: { 'Content-Type': 'application/json', ...options.headers },
    body: JSON.stringify({ username, password }),
  });
}

/** Logs in (JSON) and returns the session id; fails the test when the login is refused. */
export async function sessionFor(server: TestServer, username: string, password: string): Promise<string> {
  const res = await loginJson(server, username, password);
  if (res.status !== 200) throw new Error(`login of ${username} answered ${res.status}: ${res.body}`);
  const { authSessionId } = JSON.parse(res.body) as { authSessionId: string };
  return authSessionId;
}

export const withSession = (id: string): Record<string, string> => ({ 'X-authSessionId': id });

/** The 401 every refused credential gets: the same envelope, whatever check failed. */
export function expectRefused(res: Response, message = REFUSED): void {
  expect(res.status).toBe(401);
  expect(res.headers['www-authenticate']).toBe('Basic realm="flexi-admin"');
  if (String(res.headers['content-type']).includes('json')) {
    expect(JSON.parse(res.body)).toEqual({ winstrom: { '@version': '1.0', success: false, message } });
  } else {
    expect(res.body).toBe(`<?xml version="1.0" encoding="UTF-8"?>\n<winstrom version="1.0"><success>false</success><message>${message}</message></winstrom>\n`);
  }
}
