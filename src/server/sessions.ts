import { createHash, randomBytes } from 'node:crypto';
import { formatStoredHash, verifyPassword, type HashPolicy } from '../domain/passwords';
import { ROOT_GROUP } from '../domain/principals';
import type { UserRecord } from '../domain/users';
import type { Store } from '../store/store';

export function newSessionId(): string {
  return randomBytes(32).toString('base64url');
}

export function sessionIdHash(sessionId: string): string {
  return createHash('sha256').update(sessionId, 'utf8').digest('hex');
}

/**
 * Verified against when the user is unknown or has no password, in the server's own hash
 * policy: then an unknown name costs what a wrong password of a user hashed by this server
 * costs, and the answer time does not tell which names exist.
 */
function decoyHash(policy: HashPolicy): string {
  return formatStoredHash(policy.algorithm, 'decoy', '0'.repeat(64), policy.pbkdf2Iterations);
}

export type LoginResult =
  | { ok: true; sessionId: string; user: UserRecord }
  | { ok: false; reason: 'wrong-credentials' }
  | { ok: false; reason: 'blocked'; username: string; message: string };

/**
 * Any stored hash format verifies (SPEC §4.3). The block message is revealed only to
 * someone who knows the password; unknown, deleted and password-less users all look like a
 * wrong password.
 */
export async function login(store: Store, policy: HashPolicy, username: string, password: string): Promise<LoginResult> {
  // Logins are global: a username is unique across every license group.
  const user = await store.findUserRecord(ROOT_GROUP, username);
  const verified = await verifyPassword(user?.passwordHash ?? decoyHash(policy), password);
  if (!user || user.deleted || !user.passwordHash || !verified) return { ok: false, reason: 'wrong-credentials' };
  if (user.blocked) {
    return { ok: false, reason: 'blocked', username: user.username, message: user.blockMessage ?? `user ${user.username} is blocked` };
  }
  const sessionId = newSessionId();
  await store.createSession({ idHash: sessionIdHash(sessionId), userKey: user.key, now: Date.now() });
  return { ok: true, sessionId, user };
}
