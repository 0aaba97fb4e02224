export const PERMISSION_NAMES = [
  'manageAll',
  'createCompany',
  'deleteCompany',
  'createUser',
  'changePassword',
  'grantPermission',
  'licenseManagement',
] as const;

export type PermissionName = (typeof PERMISSION_NAMES)[number];
export type Permissions = Record<PermissionName, boolean>;

export const PERMISSION_ALIASES: Readonly<Record<string, PermissionName>> = {
  licenseMgmt: 'licenseManagement',
};

export function noPermissions(): Permissions {
  return {
    manageAll: false,
    createCompany: false,
    deleteCompany: false,
    createUser: false,
    changePassword: false,
    grantPermission: false,
    licenseManagement: false,
  };
}

export function findPermission(name: string): PermissionName | undefined {
  if ((PERMISSION_NAMES as readonly string[]).includes(name)) return name as PermissionName;
  return Object.hasOwn(PERMISSION_ALIASES, name) ? PERMISSION_ALIASES[name] : undefined;
}
