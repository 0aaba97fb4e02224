import { COMPANY_FIELDS, type CompanyRecord } from '../domain/companies';
import type { PlainField } from '../domain/fields';
import { PERMISSION_NAMES } from '../domain/permissions';
import type { EffectiveParam, GroupParam, GroupParams, GroupView, Tenant } from '../domain/groups';
import { USER_FIELDS, type UserView } from '../domain/users';
import { listDocument, type Format } from './winstrom';
import { escapeXml, escapeXmlAttribute, leaf } from './writer';

/** The plain fields (domain/fields.ts) of a record, in their listed order. */
function pick(fields: readonly PlainField[], record: object): Record<string, string | null> {
  return Object.fromEntries(fields.map((f) => [f.name, (record as Record<string, string | null>)[f.name]]));
}

export function companyState(c: CompanyRecord): 'ESTABLISHED' | 'DISCONNECTED' {
  return c.show ? 'ESTABLISHED' : 'DISCONNECTED';
}

function companyJson(c: CompanyRecord) {
  return {
    dbNazev: c.id,
    name: c.name,
    country: c.country,
    ...pick(COMPANY_FIELDS, c),
    type: c.type,
    show: c.show,
    licenseGroup: c.licenseGroup,
    state: companyState(c),
  };
}

function userJson(u: UserView, detailed: boolean) {
  const summary = {
    username: u.username,
    ...pick(USER_FIELDS, u),
    userType: u.userType,
    blocked: u.blocked,
    licenseGroup: u.licenseGroup,
  };
  if (!detailed) return summary;
  return {
    ...summary,
    blockMessage: u.blockMessage,
    lastLoginAt: u.lastLoginAt ?? null,
    defaultRole: u.defaultRole,
    permissions: u.permissions,
    access: u.access,
  };
}

function companyXml(c: CompanyRecord): string {
  return `<company>${Object.entries(companyJson(c)).map(([k, v]) => leaf(k, v)).join('')}</company>`;
}

function userXml(u: UserView, detailed: boolean): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(userJson(u, detailed))) {
    if (k === 'permissions') parts.push(`<permissions>${PERMISSION_NAMES.map((p) => leaf(p, u.permissions[p])).join('')}</permissions>`);
    else if (k === 'access') parts.push(`<access>${u.access.map((a) => `<company role="${escapeXmlAttribute(a.role)}">${escapeXml(a.company)}</company>`).join('')}</access>`);
    else parts.push(leaf(k, v));
  }
  return `<user>${parts.join('')}</user>`;
}

export function renderCompanies(companies: readonly CompanyRecord[], format: Format, rowCount?: number): string {
  return listDocument('company', companies, format, companyJson, companyXml, rowCount);
}

export function renderUsers(users: readonly UserView[], format: Format, rowCount?: number): string {
  return listDocument('user', users, format, (u) => userJson(u, false), (u) => userXml(u, false), rowCount);
}

// ── license groups and tenants (SPEC §7.4) ───────────────────────────────────────────────

/** A group as /g shows it; with `detail`, also its children, own parameters and effective ones. */
export interface GroupDetail {
  children: string[];
  params: GroupParams;
  effectiveParams: Partial<Record<GroupParam, EffectiveParam>>;
}

function groupJson(g: GroupView, detail?: GroupDetail) {
  const summary = { id: g.id, name: g.name, parent: g.parentId, path: g.path, seats: g.seats, seatsUsed: g.seatsUsed };
  return detail ? { ...summary, ...detail } : summary;
}

function groupXml(g: GroupView, detail?: GroupDetail): string {
  const parts = [leaf('id', g.id), leaf('name', g.name), leaf('parent', g.parentId), `<path>${g.path.map((p) => leaf('group', p)).join('')}</path>`, leaf('seats', g.seats), leaf('seatsUsed', g.seatsUsed)];
  if (detail) {
    parts.push(`<children>${detail.children.map((c) => leaf('group', c)).join('')}</children>`);
    const own = Object.entries(detail.params).map(([name, value]) => `<param name="${escapeXmlAttribute(name)}">${escapeXml(String(value))}</param>`);
    parts.push(`<params>${own.join('')}</params>`);
    const effective = Object.entries(detail.effectiveParams).map(
      ([name, p]) => `<param name="${escapeXmlAttribute(name)}" from="${escapeXmlAttribute((p as EffectiveParam).from)}">${escapeXml((p as EffectiveParam).value)}</param>`,
    );
    parts.push(`<effectiveParams>${effective.join('')}</effectiveParams>`);
  }
  return `<group>${parts.join('')}</group>`;
}

export function renderGroups(groups: readonly GroupView[], format: Format, rowCount?: number): string {
  return listDocument('group', groups, format, (g) => groupJson(g), (g) => groupXml(g), rowCount);
}

export function renderGroup(group: GroupView, detail: GroupDetail, format: Format): string {
  return listDocument('group', [group], format, (g) => groupJson(g, detail), (g) => groupXml(g, detail));
}

function tenantXml(t: Tenant): string {
  return `<tenant>${leaf('id', t.id)}${leaf('name', t.name)}<path>${t.path.map((p) => leaf('group', p)).join('')}</path><companies>${t.companies.map((c) => leaf('company', c)).join('')}</companies></tenant>`;
}

export function renderTenants(tenants: readonly Tenant[], format: Format): string {
  return listDocument('tenant', tenants, format, (t) => t, tenantXml);
}

export function renderUser(user: UserView, format: Format): string {
  return listDocument('user', [user], format, (u) => userJson(u, true), (u) => userXml(u, true));
}
