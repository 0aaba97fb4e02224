import type { RoleCode } from './roles';

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

// ── SPEC §6: what an acting user (impersonated or logged in) needs ──────────────────────
//
// The one place these rules live: the planner asks them for every change, the routes for every
// read and for /v2/admin/batch. Certificate, server-password and CLI principals act with full
// rights and never ask.

/** Every one of `allOf`, or any one of `anyOf`; listed in the order a refusal names them. */
export type Need = { readonly allOf: readonly PermissionName[] } | { readonly anyOf: readonly PermissionName[] };

export const NEEDS = {
  createUser: { allOf: ['createUser'] },
  changeOthersPassword: { allOf: ['changePassword'] },
  /**
   * Naming another user's plain-text password at all, even the one it has: whether it matches
   * (SKIPPED) or not is an answer in itself, so only an actor that may set that password
   * (changePassword) or that user's other fields (createUser, so that its own re-sent batches
   * stay SKIPPED) learns it — and never about a user that outranks it (no takeover).
   */
  nameOthersPassword: { anyOf: ['changePassword', 'createUser'] },
  /** Any other field of another user: names, email, default role, block state, type. */
  changeOthersFields: { allOf: ['createUser'] },
  /** Deleting releases a license, hence licenseManagement. */
  deleteUser: { allOf: ['createUser', 'licenseManagement'] },
  changePermissions: { allOf: ['grantPermission'] },
  /** Plus the ADMIN role in that company or manageAll: see runsCompany. */
  changeAccess: { allOf: ['grantPermission'] },
  createCompany: { allOf: ['createCompany'] },
  /** Moving a user or a company to another license group changes whose licenses it uses (SPEC §7). */
  moveToGroup: { allOf: ['licenseManagement'] },
  /** Any <licenseGroup> operation (SPEC §7.1). */
  changeGroups: { allOf: ['licenseManagement'] },
  /** Any <dateAction> operation (SPEC §10.3). */
  changeDateActions: { allOf: ['licenseManagement'] },
  /**
   * A date action that hides companies: its runs hide every company of a subtree, which one holds
   * only with manageAll (ADMIN in each company cannot be known when the action is set).
   */
  scheduleHide: { allOf: ['manageAll'] },
  deleteCompany: { allOf: ['deleteCompany'] },
  sendSessionBatch: { allOf: ['manageAll', 'licenseManagement'] },
  /** Creating, changing or deleting a webhook subscription, and listing them (SPEC §10.2). */
  manageSubscriptions: { allOf: ['manageAll'] },
  /** Seeing other users in /u, and the journal entries of batches others sent. */
  readOthers: { anyOf: ['manageAll', 'createUser'] },
} as const satisfies Record<string, Need>;

export type GuardedOperation = keyof typeof NEEDS;

/** The permission that `held` lacks for `operation` (the first one the table lists), or undefined when allowed. */
export function missingFor(operation: GuardedOperation, held: Permissions): PermissionName | undefined {
  const need: Need = NEEDS[operation];
  if ('anyOf' in need) return need.anyOf.some((p) => held[p]) ? undefined : need.anyOf[0];
  return need.allOf.find((p) => !held[p]);
}

/** Changing a company, or access to it: the ADMIN role there, or manageAll, which stands for it in every company. */
export function runsCompany(held: Permissions, roleThere: RoleCode | undefined): boolean {
  return held.manageAll || roleThere === 'ADMIN';
}

/**
 * No takeover: the first permission (in PERMISSION_NAMES order) that `target` holds and `actor`
 * lacks. While there is one, the actor may not change the target's password, permissions, other
 * fields, block state, type or existence.
 */
export function takeoverBlocker(actor: Permissions, target: Permissions): PermissionName | undefined {
  return PERMISSION_NAMES.find((p) => target[p] && !actor[p]);
}

/**
 * The first permission a change from `before` to `after` grants or revokes that `actor` does
 * not hold itself: nobody hands out, or takes away, a permission it lacks.
 */
export function beyondActor(actor: Permissions, before: Permissions, after: Permissions): { permission: PermissionName; granted: boolean } | undefined {
  const permission = PERMISSION_NAMES.find((p) => before[p] !== after[p] && !actor[p]);
  return permission === undefined ? undefined : { permission, granted: after[permission] };
}
