import { createHash, randomBytes } from 'node:crypto';
import { ROOT_GROUP } from '../domain/principals';
import type { UserRecord } from '../domain/users';
import type { Store } from '../store/store';
import type { PasswordChecks } from './password-checks';

export function newSessionId(): string {
  return randomBytes(32).toString('base64url');
}

export function sessionIdHash(sessionId: string): string {
  return createHash('sha256').update(sessionId, 'utf8').digest('hex');
}

export type LoginResult =
  | { ok: true; sessionId: string; user: UserRecord }
  | { ok: false; reason: 'wrong-credentials'; pbkdf2Iterations: number }
  | { ok: false; reason: 'blocked'; username: string; message: string };

/**
 * Any stored hash format verifies (SPEC §4.3). The block message is revealed only to
 * someone who knows the password; unknown, deleted and password-less users all look like a
 * wrong password, and cost the same work (PasswordChecks). A password that matched a form weaker
 * than the server's policy is stored in the policy's form from then on.
 */
export async function login(store: Store, checks: PasswordChecks, username: string, password: string, sessionIdleMs: number): Promise<LoginResult> {
  // Logins are global: a username is unique across every license group.
  const user = await store.findUserRecord(ROOT_GROUP, username);
  const stored = user?.passwordHash ?? null;
  const check = await checks.check(stored, password, { upgrade: user !== undefined && !user.deleted && !user.blocked });
  if (!user || user.deleted || !user.passwordHash || !check.matches) return { ok: false, reason: 'wrong-credentials', pbkdf2Iterations: check.pbkdf2Iterations };
  if (user.blocked) {
    return { ok: false, reason: 'blocked', username: user.username, message: user.blockMessage ?? `user ${user.username} is blocked` };
  }
  if (check.upgrade !== undefined) await store.upgradePasswordHash(user.key, user.passwordHash, check.upgrade);
  const sessionId = newSessionId();
  await store.createSession({ idHash: sessionIdHash(sessionId), userKey: user.key, now: Date.now(), idleMs: sessionIdleMs });
  return { ok: true, sessionId, user };
}
