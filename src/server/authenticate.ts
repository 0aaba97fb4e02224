import type { Request } from 'express';
import type { TLSSocket } from 'node:tls';
import type { Principal } from '../domain/principals';
import { ROOT_GROUP } from '../domain/principals';
import { FlexiError } from '../errors';
import type { Logger } from '../log';
import type { Store } from '../store/store';
import { checkServerCredentials, type ServerCredentials } from './server-auth';

export interface AuthOptions {
  store: Store;
  serverCredentials: ServerCredentials | null;
  /** With --client-ca, the TLS layer verifies chains and the socket says whether it did. */
  requireChain: boolean;
  logger: Logger;
}

export const IMPERSONATION_HEADER = 'x-flexibee-authorization';

const REFUSED = 'Authentication failed: present a registered client certificate or valid server credentials.';

/** Every failure answers the same; only the log says which check failed. */
function refuse(options: AuthOptions, req: Request, reason: string): never {
  options.logger.warn('authentication refused', { reason, remote: req.socket.remoteAddress, path: req.path });
  throw new FlexiError('unauthorized', REFUSED, { 'WWW-Authenticate': 'Basic realm="flexi-admin"' });
}

function basicCredentials(header: string): { username: string; password: string } | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * Server credentials when an Authorization header is sent, else the client certificate.
 * A certificate is trusted by its registered SHA1 fingerprint, not by who signed it.
 */
export async function authenticate(req: Request, options: AuthOptions): Promise<Principal> {
  const authorization = req.headers.authorization;
  let principal: Principal;
  if (authorization !== undefined) {
    const credentials = basicCredentials(authorization);
    if (!credentials) refuse(options, req, 'malformed Authorization header');
    if (!options.serverCredentials) refuse(options, req, 'password authentication is off');
    if (!checkServerCredentials(options.serverCredentials, credentials.username, credentials.password)) {
      refuse(options, req, 'wrong server name or password');
    }
    principal = { kind: 'password', name: options.serverCredentials.username, scope: ROOT_GROUP };
  } else {
    principal = await certificatePrincipal(req, options);
  }
  if (req.headers[IMPERSONATION_HEADER] !== undefined) {
    throw new FlexiError('forbidden', 'Impersonation (X-FlexiBee-Authorization) is not available yet; send the request without that header.');
  }
  return principal;
}

async function certificatePrincipal(req: Request, options: AuthOptions): Promise<Principal> {
  const socket = req.socket as TLSSocket;
  const cert = socket.getPeerCertificate();
  // With requestCert and rejectUnauthorized off, "no certificate" is an empty object.
  if (!cert || !cert.fingerprint) refuse(options, req, 'no client certificate');
  const now = Date.now();
  if (now < Date.parse(cert.valid_from) || now > Date.parse(cert.valid_to)) {
    refuse(options, req, `certificate ${cert.fingerprint} is outside its validity period`);
  }
  if (options.requireChain && !socket.authorized) {
    refuse(options, req, `certificate ${cert.fingerprint} does not verify against the client CA (${String(socket.authorizationError)})`);
  }
  const record = await options.store.findActiveFingerprint(cert.fingerprint);
  if (!record) refuse(options, req, `certificate ${cert.fingerprint} is not registered or is revoked`);
  return { kind: 'certificate', name: record.fingerprint, label: record.label ?? undefined, scope: record.scope };
}
