import type { CompanyFieldValues } from '../domain/companies';
import type { DateActionDo, DateActionEntity, DateActionField } from '../domain/date-actions';
import type { DateOffset } from '../domain/dates';
import type { GroupParam } from '../domain/groups';
import type { Country } from '../domain/org-types';
import type { Permissions } from '../domain/permissions';
import type { RoleCode } from '../domain/roles';
import type { UserFieldValues, UserType } from '../domain/users';

export type Action = 'create-update' | 'delete';
export type { EntityType } from '../domain/results';

/** A password as the batch gives it: plain text to hash, or a stored form to keep as given. */
export type PasswordInput = { kind: 'plain'; value: string } | { kind: 'hashed'; stored: string };

export interface UserFields extends Partial<UserFieldValues> {
  password?: PasswordInput;
  permissions?: Partial<Permissions>;
  defaultRole?: RoleCode;
  blocked?: { value: boolean; message: string | null };
  userType?: UserType;
  /** The license group to create the user in, or to move it to (SPEC §7.1). */
  licenseGroup?: string;
}

export interface CompanyFields extends Partial<CompanyFieldValues> {
  name?: string;
  country?: Country;
  type?: string;
  adminUser?: string;
  show?: boolean;
  /** The license group to create the company in, or to move it to (SPEC §7.1). */
  licenseGroup?: string;
}

export interface LicenseGroupFields {
  name?: string;
  parent?: string;
  /** null: `<seats/>`, the limit is removed. */
  seats?: number | null;
  /** null: `<param name="X"/>`, the group's own value is removed. */
  params?: Partial<Record<GroupParam, string | null>>;
}

/** SPEC §10.3; fields not given are left as they are. */
export interface DateActionFields {
  entity?: DateActionEntity;
  field?: DateActionField;
  /** Given (even as none left after dropping zeros): they replace the stored ones. */
  offsets?: DateOffset[];
  do?: DateActionDo;
  /** null: `<message/>`, the message is removed. */
  message?: string | null;
  licenseGroup?: string;
  active?: boolean;
}

/** SPEC §10.2; every field already read into its stored form. */
export interface SubscriptionFields {
  url?: string;
  events?: string[];
  secret?: string;
  excludeOwn?: boolean;
  licenseGroup?: string;
  active?: boolean;
}

interface OperationBase {
  action: Action;
  /** Set when the element itself is invalid; the operation is then FAILED with this message. */
  invalid?: string;
}

export interface UserOperation extends OperationBase {
  kind: 'user';
  username?: string;
  fields: UserFields;
}

export interface CompanyOperation extends OperationBase {
  kind: 'company';
  id?: string;
  fields: CompanyFields;
}

export interface AccessOperation extends OperationBase {
  kind: 'access';
  /** From the `user` attribute, else the nearest `<user>` above. */
  username?: string;
  company?: string;
  role?: RoleCode;
}

export interface LicenseGroupOperation extends OperationBase {
  kind: 'licenseGroup';
  id?: string;
  fields: LicenseGroupFields;
}

export interface DateActionOperation extends OperationBase {
  kind: 'dateAction';
  id?: string;
  fields: DateActionFields;
}

export interface SubscriptionOperation extends OperationBase {
  kind: 'subscription';
  id?: string;
  fields: SubscriptionFields;
}

export interface UnknownOperation extends OperationBase {
  kind: 'unknown';
  element: string;
  invalid: string;
}

export type Operation = UserOperation | CompanyOperation | AccessOperation | LicenseGroupOperation | DateActionOperation | SubscriptionOperation | UnknownOperation;

export interface BatchDocument {
  id: string;
  atomic: boolean;
  dryRun: boolean;
  operations: Operation[];
}
