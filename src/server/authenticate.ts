import type { Request } from 'express';
import { createHash } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { Principal } from '../domain/principals';
import { ROOT_GROUP } from '../domain/principals';
import { userKey, type UserRecord } from '../domain/users';
import { FlexiError, isFlexiError } from '../errors';
import type { Logger } from '../log';
import type { AuthFailure, Metrics } from '../metrics';
import type { Store } from '../store/store';
import { checkServerCredentials, type ServerCredentials } from './server-auth';
import { sessionIdHash } from './sessions';
import type { Attempt, AuthThrottle } from './throttle';

export interface AuthOptions {
  store: Store;
  serverCredentials: ServerCredentials | null;
  /** With --client-ca, the TLS layer verifies chains and the socket says whether it did. */
  requireChain: boolean;
  sessionIdleMs: number;
  throttle: AuthThrottle;
  logger: Logger;
  metrics?: Metrics;
}

export const IMPERSONATION_HEADER = 'x-flexibee-authorization';
export const SESSION_HEADER = 'x-authsessionid';

const REFUSED = 'Authentication failed: present a registered client certificate, valid server credentials or a live session.';

export function clientAddress(req: Request): string {
  return req.socket.remoteAddress ?? 'unknown';
}

/** Why a check refused: its kind for the metrics, and the words for the log. */
export interface Refusal {
  kind: AuthFailure;
  reason: string;
}

/**
 * Every failure answers the same; only the log (and the metrics, by kind) say which check
 * failed. The caller counts the failure with the throttle (asAttempt, or AuthThrottle.recordFailure).
 */
export function refuse(options: AuthOptions, req: Request, { kind, reason }: Refusal, message = REFUSED, fields: Record<string, unknown> = {}): never {
  options.metrics?.authFailures.inc({ reason: kind });
  options.logger.warn('authentication refused', { reason, remote: clientAddress(req), path: req.path, ...fields });
  throw new FlexiError('unauthorized', message, { 'WWW-Authenticate': 'Basic realm="flexi-admin"' });
}

/** Names as throttle keys: a digest, so that a sprayed name of any length costs the same few bytes. */
const nameKey = (kind: string, name: string): string => createHash('sha256').update(`${kind}:${name}`, 'utf8').digest('base64url');
/** The throttle's key for password guesses at a stored user's login (usernames are case-insensitive). */
export const loginKey = (username: string): string => nameKey('user', userKey(username));
/** The throttle's key for guesses of the server-auth password under a name. */
const serverNameKey = (username: string): string => nameKey('server', username);

/**
 * Runs `check` as a counted attempt (AuthThrottle.begin): a refusal (401) counts as a failure;
 * a success, or any other error (the store unreachable, the server busy: no guess was
 * answered), counts nothing.
 */
export async function asAttempt<T>(attempt: Promise<Attempt>, check: () => Promise<T> | T): Promise<T> {
  const counted = await attempt;
  try {
    const result = await check();
    counted.release();
    return result;
  } catch (err) {
    if (isFlexiError(err) && err.code === 'unauthorized') counted.fail();
    else counted.release();
    throw err;
  }
}

function basicCredentials(header: string): { username: string; password: string } | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Why a stored user cannot act right now, or undefined when it can. */
export function userUnavailable(user: UserRecord | undefined): 'does not exist' | 'is blocked' | undefined {
  if (!user || user.deleted) return 'does not exist';
  return user.blocked ? 'is blocked' : undefined;
}

/**
 * A session (X-authSessionId) when one is sent, else server credentials when an
 * Authorization header is sent, else the client certificate — trusted by its registered
 * SHA1 fingerprint, not by who signed it. Then X-FlexiBee-Authorization, if sent, makes the
 * request act as that stored user.
 *
 * Session ids and passwords are guesses to throttle: each is counted before it is checked.
 * A registered, valid certificate is never throttled — a stranger failing from a partner's
 * address (a shared NAT) must not lock the partner out; a certificate cannot be guessed.
 */
export async function authenticate(req: Request, options: AuthOptions): Promise<Principal> {
  const session = req.headers[SESSION_HEADER];
  const authorization = req.headers.authorization;
  let principal: Principal;
  if (typeof session === 'string') {
    principal = await sessionPrincipal(req, session, options);
  } else if (authorization !== undefined) {
    principal = await passwordPrincipal(req, authorization, options);
  } else {
    principal = await certificatePrincipal(req, options);
  }
  const impersonated = req.headers[IMPERSONATION_HEADER];
  if (impersonated === undefined) return principal;
  if (principal.kind === 'session') {
    throw new FlexiError('forbidden', 'A session acts as its own user; it cannot send X-FlexiBee-Authorization.');
  }
  const username = String(impersonated).trim();
  const user = await options.store.findUserRecord(principal.scope, username);
  const why = userUnavailable(user);
  if (why || !user) {
    throw new FlexiError('forbidden', `Cannot act as '${username}': that user ${why ?? 'does not exist'}; nothing was applied.`);
  }
  // Acting as a user is acting within that user's own scope, which lies inside the credential's (SPEC §7).
  return { ...principal, scope: user.licenseGroup, actingUser: user.username };
}

function sessionPrincipal(req: Request, sessionId: string, options: AuthOptions): Promise<Principal> {
  return asAttempt(options.throttle.begin(clientAddress(req)), async () => {
    const session = await options.store.useSession(sessionIdHash(sessionId), Date.now(), options.sessionIdleMs);
    if (!session) refuse(options, req, { kind: 'session-unknown', reason: 'unknown or expired session' });
    const { user, tenant } = session;
    if (userUnavailable(user)) refuse(options, req, { kind: 'session-user-unavailable', reason: `session user ${user.username} ${userUnavailable(user)}` });
    // A session works in the tenant it was opened in (SPEC §7.5), and nowhere else: once that is no
    // longer in its user's scope (the user or the group was moved), the session is over rather than
    // moved to another tenant its client never chose. Sessions opened before license groups have none.
    const scope = tenant ?? user.licenseGroup;
    if (scope !== user.licenseGroup && !(await options.store.groupInScope(user.licenseGroup, scope))) {
      refuse(options, req, { kind: 'session-unknown', reason: `session of ${user.username} works in license group ${scope}, which is no longer in its scope` });
    }
    return { kind: 'session', name: user.username, scope, actingUser: user.username };
  });
}

function passwordPrincipal(req: Request, authorization: string, options: AuthOptions): Promise<Principal> {
  const credentials = basicCredentials(authorization);
  return asAttempt(options.throttle.begin(clientAddress(req), credentials && serverNameKey(credentials.username)), () => {
    if (!credentials) refuse(options, req, { kind: 'malformed-authorization', reason: 'malformed Authorization header' });
    if (!options.serverCredentials) refuse(options, req, { kind: 'password-auth-off', reason: 'password authentication is off' });
    if (!checkServerCredentials(options.serverCredentials, credentials.username, credentials.password)) {
      refuse(options, req, { kind: 'wrong-server-password', reason: 'wrong server name or password' });
    }
    return { kind: 'password', name: options.serverCredentials.username, scope: ROOT_GROUP };
  });
}

/**
 * The client certificate of a connection, read once per connection: getPeerCertificate builds
 * a fresh object of the whole certificate on every call, which cost a keep-alive client more
 * than its small batch did. The server refuses renegotiation (server.ts), so a connection's
 * certificate cannot change.
 */
const peerCertificates = new WeakMap<TLSSocket, PeerCertificate>();

function peerCertificateOf(socket: TLSSocket): PeerCertificate {
  let cert = peerCertificates.get(socket);
  if (!cert) {
    cert = socket.getPeerCertificate();
    peerCertificates.set(socket, cert);
  }
  return cert;
}

/**
 * A registered, valid certificate authenticates whatever its address did before. Any other
 * outcome counts as a failure of the address, which is throttled (429) once over its limit.
 */
async function certificatePrincipal(req: Request, options: AuthOptions): Promise<Principal> {
  const checked = await checkCertificate(req, options);
  if (!('reason' in checked)) return checked;
  options.throttle.recordFailure(clientAddress(req));
  refuse(options, req, checked);
}

/** The certificate's principal, or why it is refused. */
async function checkCertificate(req: Request, options: AuthOptions): Promise<Principal | Refusal> {
  const socket = req.socket as TLSSocket;
  const cert = peerCertificateOf(socket);
  // With requestCert and rejectUnauthorized off, "no certificate" is an empty object.
  if (!cert || !cert.fingerprint) return { kind: 'no-certificate', reason: 'no client certificate' };
  const now = Date.now();
  if (now < Date.parse(cert.valid_from) || now > Date.parse(cert.valid_to)) {
    return { kind: 'certificate-expired', reason: `certificate ${cert.fingerprint} is outside its validity period` };
  }
  if (options.requireChain && !socket.authorized) {
    return { kind: 'certificate-chain', reason: `certificate ${cert.fingerprint} does not verify against the client CA (${String(socket.authorizationError)})` };
  }
  const record = await options.store.findActiveFingerprint(cert.fingerprint);
  if (!record) return { kind: 'certificate-unregistered', reason: `certificate ${cert.fingerprint} is not registered or is revoked` };
  return { kind: 'certificate', name: record.fingerprint, label: record.label ?? undefined, scope: record.scope };
}
