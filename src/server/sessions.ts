import { createHash, randomBytes } from 'node:crypto';
import { verifyPassword } from '../domain/passwords';
import { ROOT_GROUP } from '../domain/principals';
import type { UserRecord } from '../domain/users';
import type { Store } from '../store/store';

export function newSessionId(): string {
  return randomBytes(32).toString('base64url');
}

export function sessionIdHash(sessionId: string): string {
  return createHash('sha256').update(sessionId, 'utf8').digest('hex');
}

/** Verified against when the user is unknown, so that case costs a hash like the others. */
const DECOY_HASH = 'sha256:decoy:0000000000000000000000000000000000000000000000000000000000000000';

export type LoginResult =
  | { ok: true; sessionId: string; user: UserRecord }
  | { ok: false; reason: 'wrong-credentials' }
  | { ok: false; reason: 'blocked'; message: string };

/**
 * Any stored hash format verifies (SPEC §4.3). The block message is revealed only to
 * someone who knows the password; unknown, deleted and password-less users all look like a
 * wrong password.
 */
export async function login(store: Store, username: string, password: string): Promise<LoginResult> {
  // Logins are global: a username is unique across every license group.
  const user = await store.findUserRecord(ROOT_GROUP, username);
  const verified = await verifyPassword(user?.passwordHash ?? DECOY_HASH, password);
  if (!user || user.deleted || !user.passwordHash || !verified) return { ok: false, reason: 'wrong-credentials' };
  if (user.blocked) return { ok: false, reason: 'blocked', message: user.blockMessage ?? `user ${user.username} is blocked` };
  const sessionId = newSessionId();
  await store.createSession({ idHash: sessionIdHash(sessionId), userKey: user.key, now: Date.now() });
  return { ok: true, sessionId, user };
}
