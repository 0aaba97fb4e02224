import { COMPANY_FIELDS } from '../domain/companies';
import { COMPANY_ID_PATTERN } from '../domain/company-id';
import {
  DATE_ACTION_DOS,
  DATE_ACTION_ENTITIES,
  DATE_ACTION_FIELDS,
  DATE_ACTION_ID_PATTERN,
  isDateActionDo,
  isDateActionEntity,
  isDateActionField,
  MAX_OFFSETS,
  normalOffsets,
  offsetProblem,
  unknownUnitMessage,
} from '../domain/date-actions';
import { isOffsetUnit, type DateOffset } from '../domain/dates';
import type { PlainField } from '../domain/fields';
import { GROUP_ID_PATTERN, GROUP_PARAMS, isGroupParam, readGroupParam } from '../domain/groups';
import { findOrgType, isCountry, unknownOrgTypeMessage } from '../domain/org-types';
import { findPermission, PERMISSION_NAMES, type Permissions } from '../domain/permissions';
import { DIGEST_HEX_DIGITS, formatStoredHash, HASH_ALGORITHMS, isDigestOf, isHashAlgorithm, isPbkdf2Iterations, MAX_PBKDF2_ITERATIONS } from '../domain/passwords';
import { findRole, unknownRoleMessage } from '../domain/roles';
import { isUserType, USER_FIELDS, USERNAME_PATTERN, USER_TYPES } from '../domain/users';
import { readEventPatterns, readSecret, readWebhookUrl, SUBSCRIPTION_ID_PATTERN } from '../domain/webhooks';
import { FlexiError } from '../errors';
import type {
  AccessOperation,
  Action,
  BatchDocument,
  CompanyFields,
  CompanyOperation,
  DateActionOperation,
  LicenseGroupFields,
  LicenseGroupOperation,
  Operation,
  SubscriptionOperation,
  UserFields,
  UserOperation,
} from './operations';
import { parseXmlDocument, type XmlElement } from '../xml/reader';

export interface ParseLimits {
  maxOperations: number;
}

const ROOT = 'flexibee-batch';
const ROOT_ATTRIBUTES = ['id', 'atomic', 'dry-run'];
const MAX_BATCH_ID = 200;
const MAX_TEXT = 255;
const MAX_PASSWORD = 1024;

/** Localized element names of the German copy of the original documentation. */
const USER_ALIASES: Readonly<Record<string, string>> = {
  Benutzername: 'username',
  Geschenkname: 'givenName',
  Familienname: 'familyName',
};
const USER_ELEMENTS = ['username', 'password', ...USER_FIELDS.map((f) => f.name), 'permissions', 'defaultRole', 'blocked', 'userType', 'licenseGroup'];
const COMPANY_ELEMENTS = ['id', 'name', 'country', ...COMPANY_FIELDS.map((f) => f.name), 'type', 'adminUser', 'show', 'licenseGroup'];
const LICENSE_GROUP_ELEMENTS = ['id', 'name', 'parent', 'seats', 'param'];
const DATE_ACTION_ELEMENTS = ['id', 'entity', 'field', 'offset', 'do', 'message', 'licenseGroup', 'active'];
const SUBSCRIPTION_ELEMENTS = ['id', 'url', 'events', 'secret', 'excludeOwn', 'licenseGroup', 'active'];
const OPERATION_ELEMENTS = ['user', 'company', 'access', 'licenseGroup', 'dateAction', 'subscription'];
/** Seats of one group: a whole number, at most this (far more than any deployment). */
const MAX_SEATS = 100_000_000;

/** Thrown inside one operation's reader; becomes that operation's FAILED message. */
class InvalidOperation extends Error {}

function invalid(message: string): never {
  throw new InvalidOperation(message);
}

function list(names: readonly string[]): string {
  return names.map((n) => `<${n}>`).join(', ');
}

function unknownElementMessage(name: string, parent: string, expected: readonly string[]): string {
  const hint = expected.find((e) => e.toLowerCase() === name.toLowerCase());
  const suffix = hint ? ` (element names are case-sensitive: did you mean <${hint}>?)` : '';
  return `unknown element <${name}> in <${parent}>; expected ${list(expected)}${suffix}`;
}

function parseBoolean(value: string, what: string): boolean {
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  return invalid(`${what} must be true or false, not '${value}'`);
}

function parseAction(element: XmlElement): Action {
  const action = element.attributes.get('action') ?? 'create-update';
  if (action !== 'create-update' && action !== 'delete') {
    invalid(`unknown action '${action}' on <${element.name}>; expected create-update or delete`);
  }
  return action;
}

function assertAttributes(element: XmlElement, allowed: readonly string[]): void {
  for (const name of element.attributes.keys()) {
    if (!allowed.includes(name)) {
      const expected = allowed.length ? allowed.join(', ') : 'none';
      invalid(`unknown attribute '${name}' on <${element.name}>; expected ${expected}`);
    }
  }
}

/** The text of a leaf field; child elements inside it are an error. */
function textOf(element: XmlElement, label = element.name): string {
  if (element.children.length) invalid(`<${label}> must contain text, not the element <${element.children[0].name}>`);
  return element.text;
}

function limitedText(element: XmlElement, label: string, max = MAX_TEXT): string {
  const text = textOf(element, label);
  if (text.length > max) invalid(`<${label}> is longer than ${max} characters`);
  return text;
}

/** A plain field's value (domain/fields.ts): null when empty, FAILED with the field's own reason when not valid. */
function plainValue(field: PlainField, element: XmlElement): string | null {
  const reading = field.read(textOf(element, field.name));
  return 'error' in reading ? invalid(reading.error) : reading.value;
}

const byName = (fields: readonly PlainField[]): ReadonlyMap<string, PlainField> => new Map(fields.map((f) => [f.name, f]));
const USER_PLAIN = byName(USER_FIELDS);
const COMPANY_PLAIN = byName(COMPANY_FIELDS);

/** Canonical field name → element, refusing repeats and unknown names. */
function fieldsOf(
  element: XmlElement,
  expected: readonly string[],
  aliases: Readonly<Record<string, string>> = {},
): Map<string, XmlElement> {
  const fields = new Map<string, XmlElement>();
  if (element.text) invalid(`<${element.name}> must contain elements, not the text '${element.text.slice(0, 40)}'`);
  for (const child of element.children) {
    const name = Object.hasOwn(aliases, child.name) ? aliases[child.name] : child.name;
    if (!expected.includes(name)) invalid(unknownElementMessage(child.name, element.name, expected));
    if (fields.has(name)) invalid(`<${name}> is given twice in <${element.name}>`);
    if (name !== 'password' && name !== 'blocked') assertAttributes(child, []);
    fields.set(name, child);
  }
  return fields;
}

function parseUsername(text: string, label: string): string {
  if (!USERNAME_PATTERN.test(text)) {
    invalid(`${label} '${text}' is not valid: use 1–64 characters of A–Z, a–z, 0–9, '.', '_', '@' and '-'`);
  }
  return text;
}

/** What a pre-hashed digest of `hash` must look like, and what was given instead. */
function digestFormMessage(hash: (typeof HASH_ALGORITHMS)[number], text: string): string {
  const what = hash === 'pbkdf2' ? 'the 32-byte PBKDF2-HMAC-SHA256 key' : `the ${hash} digest`;
  const given = /^[0-9a-fA-F]*$/.test(text) ? `${text.length} digits` : 'characters other than hex digits';
  return `a pre-hashed ${hash} <password> must be ${what} as ${DIGEST_HEX_DIGITS[hash]} hexadecimal digits (0-9, a-f or A-F), not ${given}`;
}

function parsePassword(element: XmlElement): UserFields['password'] {
  assertAttributes(element, ['hash', 'salt', 'iterations']);
  const text = textOf(element, 'password');
  const hash = element.attributes.get('hash');
  if (hash === undefined) {
    if (element.attributes.has('salt') || element.attributes.has('iterations')) {
      invalid('<password> has a salt but no hash attribute; give hash="sha256" (or another algorithm) with a pre-hashed digest');
    }
    if (!text) invalid('<password> must not be empty');
    if (text.length > MAX_PASSWORD) invalid(`<password> is longer than ${MAX_PASSWORD} characters`);
    return { kind: 'plain', value: text };
  }
  if (!isHashAlgorithm(hash)) invalid(`unknown password hash '${hash}'; expected one of ${HASH_ALGORITHMS.join(', ')}`);
  if (!isDigestOf(hash, text)) invalid(digestFormMessage(hash, text));
  const salt = element.attributes.get('salt') ?? '';
  if (salt.length > MAX_TEXT || /[\s]/.test(salt)) invalid('the password salt must be at most 255 characters without spaces');
  let iterations = 0;
  if (hash === 'pbkdf2') {
    const given = element.attributes.get('iterations');
    iterations = Number(given);
    if (given === undefined || !/^[1-9][0-9]{0,7}$/.test(given) || !isPbkdf2Iterations(iterations)) {
      invalid(`a pbkdf2 <password> needs an iterations attribute with a whole number from 1 to ${MAX_PBKDF2_ITERATIONS}`);
    }
  } else if (element.attributes.has('iterations')) {
    invalid(`the iterations attribute belongs to pbkdf2 hashes, not ${hash}`);
  }
  return { kind: 'hashed', stored: formatStoredHash(hash, salt, text, iterations) };
}

function parsePermissions(element: XmlElement): Partial<Permissions> {
  const result: Partial<Permissions> = {};
  if (element.text) invalid('<permissions> must contain permission elements such as <createUser>true</createUser>');
  for (const child of element.children) {
    const name = findPermission(child.name);
    if (!name) invalid(unknownElementMessage(child.name, 'permissions', PERMISSION_NAMES));
    if (name in result) invalid(`the permission ${name} is given twice`);
    assertAttributes(child, []);
    result[name] = parseBoolean(textOf(child), `<${child.name}>`);
  }
  return result;
}

function readUser(element: XmlElement, op: UserOperation): void {
  // The username is read first so that even an otherwise invalid <user> is reported by name.
  const named = element.children.find((c) => c.name === 'username' || c.name === 'Benutzername');
  if (named) op.username = parseUsername(textOf(named, 'username'), 'username');
  assertAttributes(element, ['action']);
  op.action = parseAction(element);
  const fields = fieldsOf(element, USER_ELEMENTS, USER_ALIASES);
  if (!op.username) invalid('a <user> needs a <username>');
  const out: UserFields = op.fields;
  for (const [name, field] of fields) {
    const plain = USER_PLAIN.get(name);
    if (plain) {
      (out as Record<string, unknown>)[name] = plainValue(plain, field);
      continue;
    }
    switch (name) {
      case 'password':
        out.password = parsePassword(field);
        break;
      case 'permissions':
        out.permissions = parsePermissions(field);
        break;
      case 'defaultRole': {
        const text = textOf(field);
        out.defaultRole = findRole(text) ?? invalid(unknownRoleMessage(text));
        break;
      }
      case 'blocked': {
        assertAttributes(field, ['message']);
        const value = parseBoolean(textOf(field), '<blocked>');
        const message = field.attributes.get('message')?.trim() || null;
        if (message && message.length > MAX_TEXT) invalid(`the block message is longer than ${MAX_TEXT} characters`);
        out.blocked = { value, message: value ? message : null };
        break;
      }
      case 'userType': {
        const text = textOf(field);
        if (!isUserType(text)) invalid(`unknown userType '${text}'; expected one of ${USER_TYPES.join(', ')}`);
        out.userType = text;
        break;
      }
      case 'licenseGroup':
        out.licenseGroup = parseGroupId(textOf(field), 'license group');
        break;
    }
  }
}

function parseGroupId(text: string, what = 'license group id'): string {
  if (!GROUP_ID_PATTERN.test(text)) {
    invalid(`${what} '${text}' is not valid: license group ids are 1–64 characters of a–z, 0–9 and _`);
  }
  return text;
}

function readLicenseGroup(element: XmlElement, op: LicenseGroupOperation): void {
  // The id is read first, so that even an otherwise invalid group is reported by name.
  const id = element.children.find((c) => c.name === 'id');
  if (id) op.id = parseGroupId(textOf(id));
  assertAttributes(element, ['action']);
  op.action = parseAction(element);
  if (element.text) invalid(`<licenseGroup> must contain elements, not the text '${element.text.slice(0, 40)}'`);
  const seen = new Set<string>();
  const params: NonNullable<LicenseGroupFields['params']> = {};
  const out = op.fields;
  for (const child of element.children) {
    if (!LICENSE_GROUP_ELEMENTS.includes(child.name)) invalid(unknownElementMessage(child.name, 'licenseGroup', LICENSE_GROUP_ELEMENTS));
    if (child.name === 'param') {
      assertAttributes(child, ['name']);
      const name = child.attributes.get('name');
      if (!name) invalid('a <param> needs a name attribute, such as <param name="defaultRole">UCETNI</param>');
      if (!isGroupParam(name)) invalid(`unknown parameter '${name}'; expected ${GROUP_PARAMS.join(', ')}`);
      if (Object.hasOwn(params, name)) invalid(`the parameter ${name} is given twice`);
      const text = textOf(child, 'param');
      const reading = text ? readGroupParam(name, text) : { value: null };
      params[name] = 'error' in reading ? invalid(reading.error) : reading.value;
      continue;
    }
    if (seen.has(child.name)) invalid(`<${child.name}> is given twice in <licenseGroup>`);
    seen.add(child.name);
    assertAttributes(child, []);
    switch (child.name) {
      case 'name': {
        const text = limitedText(child, 'name');
        if (!text) invalid('<name> must not be empty');
        out.name = text;
        break;
      }
      case 'parent':
        out.parent = parseGroupId(textOf(child), 'parent');
        break;
      case 'seats': {
        const text = textOf(child);
        if (!text) out.seats = null;
        else if (/^\d{1,9}$/.test(text) && Number(text) <= MAX_SEATS) out.seats = Number(text);
        else invalid(`<seats> must be a whole number from 0 to ${MAX_SEATS}, or empty to remove the limit; not '${text.slice(0, 40)}'`);
        break;
      }
    }
  }
  if (!op.id) invalid('a <licenseGroup> needs an <id>');
  if (Object.keys(params).length) out.params = params;
}

export function parseCompanyIdText(text: string, what = 'company id'): string {
  if (!COMPANY_ID_PATTERN.test(text)) {
    invalid(`${what} '${text}' is not valid: company ids are 1–64 characters of a–z, 0–9 and _`);
  }
  return text;
}

function readCompany(element: XmlElement, op: CompanyOperation): void {
  // The id (or the name it derives from) is read first, so a FAILED entry still names its company.
  const id = element.children.find((c) => c.name === 'id');
  if (id) op.id = parseCompanyIdText(textOf(id));
  const name = element.children.find((c) => c.name === 'name');
  if (!op.id && name?.text && name.text.length <= MAX_TEXT) op.fields.name = name.text;
  assertAttributes(element, ['action']);
  op.action = parseAction(element);
  const fields = fieldsOf(element, COMPANY_ELEMENTS);
  const out: CompanyFields = op.fields;
  for (const [name, field] of fields) {
    const plain = COMPANY_PLAIN.get(name);
    if (plain) {
      (out as Record<string, unknown>)[name] = plainValue(plain, field);
      continue;
    }
    switch (name) {
      case 'id':
        op.id = parseCompanyIdText(textOf(field));
        break;
      case 'name': {
        const text = limitedText(field, 'name');
        if (!text) invalid('<name> must not be empty');
        out.name = text;
        break;
      }
      case 'country': {
        const text = textOf(field).toUpperCase();
        if (!isCountry(text)) invalid(`unknown country '${field.text}'; expected CZ or SK`);
        out.country = text;
        break;
      }
      case 'type': {
        const text = textOf(field);
        out.type = findOrgType(text) ?? invalid(unknownOrgTypeMessage(text));
        break;
      }
      case 'adminUser':
        out.adminUser = parseUsername(textOf(field), 'adminUser');
        break;
      case 'show':
        out.show = parseBoolean(textOf(field), '<show>');
        break;
      case 'licenseGroup':
        out.licenseGroup = parseGroupId(textOf(field), 'license group');
        break;
    }
  }
}

function readAccess(element: XmlElement, op: AccessOperation): void {
  // User and company are read first, so a FAILED entry still names its grant.
  const user = element.attributes.get('user');
  if (user !== undefined) op.username = parseUsername(user, 'user');
  if (element.text) op.company = element.text;
  assertAttributes(element, ['role', 'action', 'user']);
  if (element.children.length) invalid(`<access> contains only a company id, not the element <${element.children[0].name}>`);
  op.action = parseAction(element);
  const role = element.attributes.get('role');
  if (role !== undefined) op.role = findRole(role) ?? invalid(unknownRoleMessage(role));
  if (op.company !== undefined && !COMPANY_ID_PATTERN.test(op.company)) {
    invalid(`company '${op.company}' does not exist: company ids are 1–64 characters of a–z, 0–9 and _`);
  }
}

/** SPEC §10.3. Whether the parts fit each other (a field of the entity, …) is the planner's: an update may give only some. */
function readDateAction(element: XmlElement, op: DateActionOperation): void {
  // The id is read first, so that even an otherwise invalid action is reported by name.
  const id = element.children.find((c) => c.name === 'id');
  if (id) op.id = parseDateActionId(textOf(id));
  assertAttributes(element, ['action']);
  op.action = parseAction(element);
  if (element.text) invalid(`<dateAction> must contain elements, not the text '${element.text.slice(0, 40)}'`);
  const seen = new Set<string>();
  const offsets: DateOffset[] = [];
  let offsetsGiven = false;
  const out = op.fields;
  for (const child of element.children) {
    if (!DATE_ACTION_ELEMENTS.includes(child.name)) invalid(unknownElementMessage(child.name, 'dateAction', DATE_ACTION_ELEMENTS));
    if (child.name === 'offset') {
      assertAttributes(child, ['unit']);
      const unit = child.attributes.get('unit');
      if (unit === undefined) invalid('an <offset> needs a unit attribute, days, weeks or months: <offset unit="months">3</offset>');
      if (!isOffsetUnit(unit)) invalid(unknownUnitMessage(unit));
      const text = textOf(child, 'offset');
      const problem = offsetProblem(unit, text);
      if (problem) invalid(problem);
      offsets.push({ unit, amount: Number(text) });
      if (offsets.length > MAX_OFFSETS) invalid(`a <dateAction> takes at most ${MAX_OFFSETS} <offset> elements, applied in order`);
      offsetsGiven = true;
      continue;
    }
    if (seen.has(child.name)) invalid(`<${child.name}> is given twice in <dateAction>`);
    seen.add(child.name);
    assertAttributes(child, []);
    switch (child.name) {
      case 'entity': {
        const text = textOf(child);
        out.entity = isDateActionEntity(text) ? text : invalid(`unknown entity '${text.slice(0, 40)}' in <dateAction>; expected ${DATE_ACTION_ENTITIES.join(' or ')}`);
        break;
      }
      case 'field': {
        const text = textOf(child);
        out.field = isDateActionField(text) ? text : invalid(`unknown field '${text.slice(0, 40)}' in <dateAction>; expected ${DATE_ACTION_FIELDS.join(', ')}`);
        break;
      }
      case 'do': {
        const text = textOf(child);
        out.do = isDateActionDo(text) ? text : invalid(`unknown action '${text.slice(0, 40)}' in <do>; expected ${DATE_ACTION_DOS.join(', ')}`);
        break;
      }
      case 'message':
        out.message = limitedText(child, 'message') || null;
        break;
      case 'licenseGroup':
        out.licenseGroup = parseGroupId(textOf(child), 'license group');
        break;
      case 'active':
        out.active = parseBoolean(textOf(child), '<active>');
        break;
    }
  }
  if (!op.id) invalid('a <dateAction> needs an <id>');
  if (offsetsGiven) out.offsets = normalOffsets(offsets);
}

function parseDateActionId(text: string): string {
  if (!DATE_ACTION_ID_PATTERN.test(text)) {
    invalid(`date action id '${text.slice(0, 80)}' is not valid: date action ids are 1–64 characters of a–z, 0–9, _ and -`);
  }
  return text;
}

/** A field's reading, or this operation FAILED with its reason. */
function valueOf<T>(reading: { value: T } | { error: string }): T {
  return 'error' in reading ? invalid(reading.error) : reading.value;
}

function readSubscription(element: XmlElement, op: SubscriptionOperation): void {
  // The id is read first, so that even an otherwise invalid subscription is reported by name.
  const id = element.children.find((c) => c.name === 'id');
  if (id) {
    const text = textOf(id);
    if (!SUBSCRIPTION_ID_PATTERN.test(text)) invalid(`subscription id '${text.slice(0, 80)}' is not valid: subscription ids are 1–64 characters of a–z, 0–9, _ and -`);
    op.id = text;
  }
  assertAttributes(element, ['action']);
  op.action = parseAction(element);
  const fields = fieldsOf(element, SUBSCRIPTION_ELEMENTS);
  if (!op.id) invalid('a <subscription> needs an <id>');
  const out = op.fields;
  for (const [name, field] of fields) {
    switch (name) {
      case 'url':
        out.url = valueOf(readWebhookUrl(textOf(field)));
        break;
      case 'events':
        out.events = valueOf(readEventPatterns(textOf(field)));
        break;
      case 'secret':
        out.secret = valueOf(readSecret(textOf(field)));
        break;
      case 'excludeOwn':
        out.excludeOwn = parseBoolean(textOf(field), '<excludeOwn>');
        break;
      case 'active':
        out.active = parseBoolean(textOf(field), '<active>');
        break;
      case 'licenseGroup':
        out.licenseGroup = parseGroupId(textOf(field), 'license group');
        break;
    }
  }
}

/** Runs a reader; an InvalidOperation marks the operation FAILED and keeps what was read so far. */
function read<T extends Operation>(op: T, reader: (element: XmlElement, op: T) => void, element: XmlElement): T {
  try {
    reader(element, op);
  } catch (err) {
    if (!(err instanceof InvalidOperation)) throw err;
    op.invalid = err.message;
  }
  return op;
}

function readRoot(root: XmlElement): Pick<BatchDocument, 'id' | 'atomic' | 'dryRun'> {
  if (root.name !== ROOT) {
    throw new FlexiError('bad-request', `The root element must be <${ROOT}>, not <${root.name}>.`);
  }
  for (const name of root.attributes.keys()) {
    if (!ROOT_ATTRIBUTES.includes(name) && !name.startsWith('xmlns')) {
      throw new FlexiError('bad-request', `Unknown attribute '${name}' on <${ROOT}>; expected ${ROOT_ATTRIBUTES.join(', ')}.`);
    }
  }
  const id = root.attributes.get('id')?.trim();
  if (!id) throw new FlexiError('bad-request', `The batch needs an id: <${ROOT} id="…">.`);
  if (id.length > MAX_BATCH_ID || [...id].some((ch) => ch.charCodeAt(0) < 0x20)) {
    throw new FlexiError('bad-request', `The batch id must be at most ${MAX_BATCH_ID} printable characters.`);
  }
  if (root.text) throw new FlexiError('bad-request', `<${ROOT}> must contain only operation elements, not text.`);
  const flag = (name: string): boolean => {
    const value = root.attributes.get(name);
    if (value === undefined) return false;
    if (value === 'true' || value === 'false') return value === 'true';
    throw new FlexiError('bad-request', `The attribute ${name} on <${ROOT}> must be true or false, not '${value}'.`);
  };
  return { id, atomic: flag('atomic'), dryRun: flag('dry-run') };
}

export function parseBatch(body: string, limits: ParseLimits): BatchDocument {
  const root = parseXmlDocument(body);
  const header = readRoot(root);
  if (root.children.length > limits.maxOperations) {
    throw new FlexiError(
      'payload-too-large',
      `The batch has ${root.children.length} operations; the limit is ${limits.maxOperations}. Split it into smaller batches.`,
    );
  }
  const operations: Operation[] = [];
  let nearestUser: string | undefined;
  for (const element of root.children) {
    switch (element.name) {
      case 'user': {
        const op = read<UserOperation>({ kind: 'user', action: 'create-update', fields: {} }, readUser, element);
        nearestUser = op.username;
        operations.push(op);
        break;
      }
      case 'company':
        operations.push(read<CompanyOperation>({ kind: 'company', action: 'create-update', fields: {} }, readCompany, element));
        break;
      case 'licenseGroup':
        operations.push(read<LicenseGroupOperation>({ kind: 'licenseGroup', action: 'create-update', fields: {} }, readLicenseGroup, element));
        break;
      case 'dateAction':
        operations.push(read<DateActionOperation>({ kind: 'dateAction', action: 'create-update', fields: {} }, readDateAction, element));
        break;
      case 'subscription':
        operations.push(read<SubscriptionOperation>({ kind: 'subscription', action: 'create-update', fields: {} }, readSubscription, element));
        break;
      case 'access': {
        const op = read<AccessOperation>({ kind: 'access', action: 'create-update' }, readAccess, element);
        if (!element.attributes.has('user')) op.username = nearestUser;
        operations.push(op);
        break;
      }
      default:
        operations.push({
          kind: 'unknown',
          element: element.name,
          action: element.attributes.get('action') === 'delete' ? 'delete' : 'create-update',
          invalid: unknownElementMessage(element.name, ROOT, OPERATION_ELEMENTS),
        });
    }
  }
  return { ...header, operations };
}
