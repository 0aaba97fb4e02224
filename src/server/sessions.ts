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
  | { ok: true; sessionId: string; user: UserRecord; tenant: string; tenants: string[] }
  | { ok: false; reason: 'wrong-credentials'; pbkdf2Iterations: number }
  | { ok: false; reason: 'blocked'; username: string; message: string }
  | { ok: false; reason: 'tenant'; tenant: string };

/**
 * Any stored hash format verifies (SPEC §4.3). The block message is revealed only to
 * someone who knows the password; unknown, deleted and password-less users all look like a
 * wrong password, and cost the same work (PasswordChecks). A password that matched a form weaker
 * than the server's policy is stored in the policy's form from then on.
 */
export async function login(store: Store, checks: PasswordChecks, credentials: { username: string; password: string; tenant?: string }, sessionIdleMs: number): Promise<LoginResult> {
  const { username, password } = credentials;
  // Logins are global: a username is unique across every license group.
  const user = await store.findUserRecord(ROOT_GROUP, username);
  const stored = user?.passwordHash ?? null;
  const check = await checks.check(stored, password, { upgrade: user !== undefined && !user.deleted && !user.blocked });
  if (!user || user.deleted || !user.passwordHash || !check.matches) return { ok: false, reason: 'wrong-credentials', pbkdf2Iterations: check.pbkdf2Iterations };
  if (user.blocked) {
    return { ok: false, reason: 'blocked', username: user.username, message: user.blockMessage ?? `user ${user.username} is blocked` };
  }
  // SPEC §7.5: the tenant asked for (a group of the user's scope, remembered for the next login), else
  // the one selected last while it is still in scope (once it is not, it is forgotten: a later move
  // back does not bring it back), else the user's own group.
  let tenant = user.licenseGroup;
  let remember = credentials.tenant !== undefined;
  if (credentials.tenant !== undefined) {
    if (!(await store.groupInScope(user.licenseGroup, credentials.tenant))) return { ok: false, reason: 'tenant', tenant: credentials.tenant };
    tenant = credentials.tenant;
  } else {
    const last = await store.lastTenantOf(user.key);
    if (last !== undefined && (await store.groupInScope(user.licenseGroup, last))) tenant = last;
    else if (last !== undefined) remember = true;
  }
  if (check.upgrade !== undefined) await store.upgradePasswordHash(user.key, user.passwordHash, check.upgrade);
  const sessionId = newSessionId();
  await store.createSession({
    idHash: sessionIdHash(sessionId),
    userKey: user.key,
    now: Date.now(),
    idleMs: sessionIdleMs,
    tenant,
    // The user's own group is remembered as such (null), so it follows the user when it is moved.
    ...(remember ? { lastTenant: tenant === user.licenseGroup ? null : tenant } : {}),
  });
  const tenants = ((await store.tenantsOf(user.licenseGroup, user.username)) ?? []).map((t) => t.id);
  return { ok: true, sessionId, user, tenant, tenants };
}
