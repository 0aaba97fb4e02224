import { escapeXml, escapeXmlAttribute } from '../batch/render';
import { COMPANY_FIELDS, type CompanyRecord } from '../domain/companies';
import type { PlainField } from '../domain/fields';
import { PERMISSION_NAMES } from '../domain/permissions';
import { USER_FIELDS } from '../domain/users';
import type { UserView } from '../store/store';
import type { Format } from './envelope';

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

const wrapJson = (key: string, value: unknown): string => `${JSON.stringify({ winstrom: { '@version': '1.0', [key]: value } }, null, 2)}\n`;

const el = (name: string, value: unknown): string =>
  value === null || value === undefined ? `<${name}/>` : `<${name}>${escapeXml(String(value))}</${name}>`;

const wrapXml = (inner: string[]): string =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<winstrom version="1.0">\n${inner.join('')}</winstrom>\n`;

function companyXml(c: CompanyRecord): string {
  const j = companyJson(c);
  return `  <company>${Object.entries(j).map(([k, v]) => el(k, v)).join('')}</company>\n`;
}

function userXml(u: UserView, detailed: boolean): string {
  const j = userJson(u, detailed) as Record<string, unknown>;
  const parts: string[] = [];
  for (const [k, v] of Object.entries(j)) {
    if (k === 'permissions') parts.push(`<permissions>${PERMISSION_NAMES.map((p) => el(p, u.permissions[p])).join('')}</permissions>`);
    else if (k === 'access') parts.push(`<access>${u.access.map((a) => `<company role="${escapeXmlAttribute(a.role)}">${escapeXml(a.company)}</company>`).join('')}</access>`);
    else parts.push(el(k, v));
  }
  return `  <user>${parts.join('')}</user>\n`;
}

export function renderCompanies(companies: CompanyRecord[], format: Format): string {
  return format === 'json' ? wrapJson('company', companies.map(companyJson)) : wrapXml(companies.map(companyXml));
}

export function renderUsers(users: UserView[], format: Format): string {
  return format === 'json' ? wrapJson('user', users.map((u) => userJson(u, false))) : wrapXml(users.map((u) => userXml(u, false)));
}

export function renderUser(user: UserView, format: Format): string {
  return format === 'json' ? wrapJson('user', [userJson(user, true)]) : wrapXml([userXml(user, true)]);
}
