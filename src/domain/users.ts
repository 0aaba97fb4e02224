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

export interface UserRecord {
  key: string;
  username: string;
  email: string | null;
  givenName: string | null;
  familyName: string | null;
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
    email: null,
    givenName: null,
    familyName: null,
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
