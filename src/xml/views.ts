import { COMPANY_FIELDS, type CompanyRecord } from '../domain/companies';
import type { PlainField } from '../domain/fields';
import { PERMISSION_NAMES } from '../domain/permissions';
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

export function renderCompanies(companies: readonly CompanyRecord[], format: Format): string {
  return listDocument('company', companies, format, companyJson, companyXml);
}

export function renderUsers(users: readonly UserView[], format: Format): string {
  return listDocument('user', users, format, (u) => userJson(u, false), (u) => userXml(u, false));
}

export function renderUser(user: UserView, format: Format): string {
  return listDocument('user', [user], format, (u) => userJson(u, true), (u) => userXml(u, true));
}
