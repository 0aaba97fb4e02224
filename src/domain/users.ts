import { dateField, emptyValues, textField, type PlainValues } from './fields';
import { noPermissions, type Permissions } from './permissions';
import type { RoleCode } from './roles';

export const USERNAME_PATTERN = /^[A-Za-z0-9._@-]{1,64}$/;
export const USER_TYPES = ['NORMAL', 'REST_API', 'READ_ONLY'] as const;
export type UserType = (typeof USER_TYPES)[number];

/** Usernames are unique case-insensitively but stored as first given. */
export function userKey(username: string): string {
  return username.toLowerCase();
}

export function isUserType(text: string): text is UserType {
  return (USER_TYPES as readonly string[]).includes(text);
}

/** The fields of a user that a batch only sets and the listings only show (domain/fields.ts). */
export const USER_FIELDS = [
  textField('email', 'email', { pattern: /^[^\s@<>]+@[^\s@<>]+$/, mismatch: (text) => `email '${text}' is not an e-mail address` }),
  textField('givenName', 'given_name'),
  textField('familyName', 'family_name'),
  dateField('validUntil', 'valid_until'),
] as const;

export type UserFieldValues = PlainValues<typeof USER_FIELDS>;

export interface UserRecord extends UserFieldValues {
  key: string;
  username: string;
  passwordHash: string | null;
  permissions: Permissions;
  defaultRole: RoleCode | null;
  blocked: boolean;
  blockMessage: string | null;
  userType: UserType;
  deleted: boolean;
  licenseGroup: string;
}

/** A user as it is first created: no password, no permissions, not blocked. */
export function newUserRecord(username: string, licenseGroup: string): UserRecord {
  return {
    key: userKey(username),
    username,
    ...emptyValues(USER_FIELDS),
    passwordHash: null,
    permissions: noPermissions(),
    defaultRole: null,
    blocked: false,
    blockMessage: null,
    userType: 'NORMAL',
    deleted: false,
    licenseGroup,
  };
}

/** A user as listings show it: never the password hash. */
export type UserView = Omit<UserRecord, 'passwordHash' | 'key'> & {
  access: Array<{ company: string; role: RoleCode }>;
  /** When the user last logged in (ISO time), null if never: shown for one user (GET /u/{login}), not in listings. */
  lastLoginAt?: string | null;
};
