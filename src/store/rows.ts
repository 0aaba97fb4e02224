import type { CompanyRecord } from '../domain/companies';
import type { Country } from '../domain/org-types';
import type { RoleCode } from '../domain/roles';
import type { UserRecord, UserType } from '../domain/users';
import type { FingerprintRecord, JournalEntry, UserView } from './store';

/**
 * Rows as both stores keep them: the same tables and columns (flags as 0/1, times as ISO text),
 * so one mapping serves SQLite and PostgreSQL.
 */
export type Row = Record<string, unknown>;

export const USER_COLUMNS = `key, username, email, given_name, family_name, password_hash,
  perm_manage_all, perm_create_company, perm_delete_company, perm_create_user,
  perm_change_password, perm_grant_permission, perm_license_management,
  default_role, blocked, block_message, user_type, deleted, license_group`;

/** USER_COLUMNS of the table aliased `alias` in a join. */
export const userColumnsOf = (alias: string): string => USER_COLUMNS.replace(/(\w+)/g, `${alias}.$1`);

/** 0/1, as both stores keep flags. */
export const bit = (b: boolean): number => (b ? 1 : 0);

/** The values of USER_COLUMNS for one user, then created_at and updated_at. */
export function userValues(u: UserRecord, now: string): unknown[] {
  const p = u.permissions;
  return [
    u.key, u.username, u.email, u.givenName, u.familyName, u.passwordHash,
    bit(p.manageAll), bit(p.createCompany), bit(p.deleteCompany), bit(p.createUser),
    bit(p.changePassword), bit(p.grantPermission), bit(p.licenseManagement),
    u.defaultRole, bit(u.blocked), u.blockMessage, u.userType, bit(u.deleted), u.licenseGroup, now, now,
  ];
}

/**
 * The conflict clause of a user upsert, the same in SQLite and PostgreSQL: every column but the
 * key and created_at takes the new value.
 */
export const USER_UPSERT_CONFLICT = `ON CONFLICT (key) DO UPDATE SET ${USER_COLUMNS.split(',')
  .map((c) => c.trim())
  .filter((c) => c !== 'key')
  .concat('updated_at')
  .map((c) => `${c} = excluded.${c}`)
  .join(', ')}`;

export function toUser(r: Row): UserRecord {
  return {
    key: r.key as string,
    username: r.username as string,
    email: r.email as string | null,
    givenName: r.given_name as string | null,
    familyName: r.family_name as string | null,
    passwordHash: r.password_hash as string | null,
    permissions: {
      manageAll: r.perm_manage_all === 1,
      createCompany: r.perm_create_company === 1,
      deleteCompany: r.perm_delete_company === 1,
      createUser: r.perm_create_user === 1,
      changePassword: r.perm_change_password === 1,
      grantPermission: r.perm_grant_permission === 1,
      licenseManagement: r.perm_license_management === 1,
    },
    defaultRole: r.default_role as RoleCode | null,
    blocked: r.blocked === 1,
    blockMessage: r.block_message as string | null,
    userType: r.user_type as UserType,
    deleted: r.deleted === 1,
    licenseGroup: r.license_group as string,
  };
}

export function toCompany(r: Row): CompanyRecord {
  return {
    id: r.id as string,
    name: r.name as string,
    country: r.country as Country,
    regNo: r.reg_no as string | null,
    vatId: r.vat_id as string | null,
    type: r.type as string,
    show: r.show === 1,
    licenseGroup: r.license_group as string,
  };
}

export function toFingerprint(r: Row): FingerprintRecord {
  return {
    fingerprint: r.fingerprint as string,
    scope: r.scope as string,
    label: r.label as string | null,
    createdAt: r.created_at as string,
    revokedAt: r.revoked_at as string | null,
  };
}

export function toJournal(r: Row): JournalEntry {
  return {
    batchId: r.batch_id as string,
    credential: r.credential as string,
    principal: r.principal as string,
    impersonated: r.impersonated as string | null,
    actingUser: r.acting_user_key as string | null,
    scope: r.scope as string,
    receivedAt: r.received_at as string,
    finishedAt: r.finished_at as string,
    bodySha256: r.body_sha256 as string,
    resultXml: r.result_xml as string,
  };
}

/** A user as listings show it: never the password hash. */
export function toView(u: UserRecord, access: UserView['access']): UserView {
  const { key: _key, passwordHash: _hash, ...rest } = u;
  return { ...rest, access };
}
