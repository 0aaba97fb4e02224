import type { Request, Router } from 'express';
import { GROUP_ID_PATTERN, GROUP_PARAMS, GroupTree, type EffectiveParam, type GroupParam } from '../../domain/groups';
import { DEFAULT_COUNTRY } from '../../domain/org-types';
import type { Principal } from '../../domain/principals';
import { DEFAULT_ROLE } from '../../domain/roles';
import { COMPANY_ID_PATTERN } from '../../domain/company-id';
import { USERNAME_PATTERN, userKey } from '../../domain/users';
import { FlexiError } from '../../errors';
import type { Page } from '../../store/store';
import { renderCompanies, renderGroup, renderGroups, renderTenants, renderUser, renderUsers } from '../../xml/views';
import { formatOf } from '../../xml/winstrom';
import { answerIn, sendAnswer } from '../answer';
import { isRootScope, principalOf, readableUserOnly, requireAuth, type AppDeps } from '../context';

/** The page size when a listing names none, as in the original product's REST API. */
export const DEFAULT_LIMIT = 20;
/** The most rows one page holds (also what `limit=0`, "all", gives). */
export const MAX_LIMIT = 10_000;

function oneValue(req: Request, name: string): string | undefined {
  const value = req.query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new FlexiError('bad-request', `The query parameter ${name} is given more than once, or in a form that is not a single value.`);
  return value;
}

function wholeNumber(req: Request, name: string, max: number): number | undefined {
  const text = oneValue(req, name);
  if (text === undefined) return undefined;
  if (!/^\d{1,9}$/.test(text) || Number(text) > max) throw new FlexiError('bad-request', `The query parameter ${name} must be a whole number from 0 to ${max}, not '${text.slice(0, 40)}'.`);
  return Number(text);
}

/** The ids of a listing's rows, as `after=` names them: their form, and the key the listing is ordered by. */
interface ListingIds {
  what: string;
  pattern: RegExp;
  key(id: string): string;
}

// Users are ordered by their case-insensitive key, while the listing shows the stored spelling.
const USER_IDS: ListingIds = { what: 'a username (1–64 characters of A–Z, a–z, 0–9, ., _, @ and -)', pattern: USERNAME_PATTERN, key: userKey };
const COMPANY_IDS: ListingIds = { what: 'a company id (1–64 characters of a–z, 0–9 and _)', pattern: COMPANY_ID_PATTERN, key: (id) => id };
const GROUP_IDS: ListingIds = { what: 'a license group id (1–64 characters of a–z, 0–9 and _)', pattern: GROUP_ID_PATTERN, key: (id) => id };

/**
 * `?limit=N&start=M` (Flexi's paging: 20 rows unless said, `limit=0` as many as a page holds),
 * `add-row-count=true` for the number of rows of the whole listing, `after=ID` for a walk in id
 * order that concurrent writes cannot shift, and `group=ID` for one group's subtree (SPEC §7.4).
 */
async function pageOf(req: Request, principal: Principal, deps: AppDeps, ids: ListingIds): Promise<Page> {
  const limit = wholeNumber(req, 'limit', MAX_LIMIT) ?? DEFAULT_LIMIT;
  const start = wholeNumber(req, 'start', 1_000_000_000) ?? 0;
  const rowCount = oneValue(req, 'add-row-count');
  if (rowCount !== undefined && rowCount !== 'true' && rowCount !== 'false') {
    throw new FlexiError('bad-request', `The query parameter add-row-count must be true or false, not '${rowCount.slice(0, 40)}'.`);
  }
  const given = oneValue(req, 'after');
  if (given !== undefined && !ids.pattern.test(given)) throw new FlexiError('bad-request', `The query parameter after must be ${ids.what}, not '${given.slice(0, 40)}'.`);
  const after = given === undefined ? undefined : ids.key(given);
  const group = oneValue(req, 'group');
  if (group !== undefined && (!GROUP_ID_PATTERN.test(group) || !(await deps.store.groupInScope(principal.scope, group)))) {
    // A group outside the scope is answered as one that does not exist.
    throw new FlexiError('not-found', `License group ${group} does not exist.`);
  }
  return { limit: limit === 0 ? MAX_LIMIT : limit, start, countRows: rowCount === 'true', ...(after === undefined ? {} : { after }), ...(group === undefined ? {} : { group }) };
}

/** The file name of `/u/{file}` or `/g/{file}`: the id before `.json` or `.xml`. */
function idOf(file: string, what: string): string {
  const m = /^(.+)\.(json|xml)$/.exec(file);
  if (!m) throw new FlexiError('not-found', `Ask for ${what}/${file}.json or ${what}/${file}.xml.`);
  return m[1];
}

/**
 * Read-only listings of users (`/u…`), companies (`/c…`) and license groups (`/g…`) within the
 * caller's scope, and a user's tenants; a caller acting as a user without manageAll or createUser
 * sees only that user (SPEC §6).
 */
export function directoryRoutes(router: Router, deps: AppDeps): void {
  for (const path of ['/u.json', '/u.xml']) {
    router.get(path, requireAuth(deps), async (req, res) => {
      const principal = principalOf(res);
      const page = await pageOf(req, principal, deps, USER_IDS);
      const only = await readableUserOnly(principal, deps.store);
      const listed = only === undefined ? await deps.store.listUsers(principal.scope, page) : await ownListing(deps, principal, only, page);
      sendAnswer(res, answerIn(formatOf(path), renderUsers(listed.rows, formatOf(path), listed.rowCount)));
    });
  }

  router.get('/u/:file', requireAuth(deps), async (req, res) => {
    const file = String(req.params.file);
    const login = idOf(file, '/u');
    const { scope } = principalOf(res);
    const only = await readableUserOnly(principalOf(res), deps.store);
    // A user one may not see is answered exactly as one that does not exist, after the same lookup.
    const user = await deps.store.findUser(scope, login);
    if (!user || (only !== undefined && userKey(login) !== only)) throw new FlexiError('not-found', `User ${login} does not exist.`);
    sendAnswer(res, answerIn(formatOf(file), renderUser(user, formatOf(file))));
  });

  for (const file of ['tenants.json', 'tenants.xml']) {
    router.get(`/u/:login/${file}`, requireAuth(deps), async (req, res) => {
      const login = String(req.params.login);
      const principal = principalOf(res);
      const only = await readableUserOnly(principal, deps.store);
      const tenants = await deps.store.tenantsOf(principal.scope, login);
      if (!tenants || (only !== undefined && userKey(login) !== only)) throw new FlexiError('not-found', `User ${login} does not exist.`);
      sendAnswer(res, answerIn(formatOf(file), renderTenants(tenants, formatOf(file))));
    });
  }

  for (const path of ['/c.json', '/c.xml']) {
    router.get(path, requireAuth(deps), async (req, res) => {
      const principal = principalOf(res);
      const listed = await deps.store.listCompanies(principal.scope, { includeHidden: isRootScope(principal) }, await pageOf(req, principal, deps, COMPANY_IDS));
      sendAnswer(res, answerIn(formatOf(path), renderCompanies(listed.rows, formatOf(path), listed.rowCount)));
    });
  }

  for (const path of ['/g.json', '/g.xml']) {
    router.get(path, requireAuth(deps), async (req, res) => {
      const principal = principalOf(res);
      const listed = await deps.store.listGroups(principal.scope, await pageOf(req, principal, deps, GROUP_IDS));
      sendAnswer(res, answerIn(formatOf(path), renderGroups(listed.rows, formatOf(path), listed.rowCount)));
    });
  }

  router.get('/g/:file', requireAuth(deps), async (req, res) => {
    const file = String(req.params.file);
    const id = idOf(file, '/g');
    const group = await deps.store.findGroup(principalOf(res).scope, id);
    if (!group) throw new FlexiError('not-found', `License group ${id} does not exist.`);
    const tree = new GroupTree(group.chain ?? [group]);
    const effectiveParams: Partial<Record<GroupParam, EffectiveParam>> = {};
    for (const name of GROUP_PARAMS) {
      const found = tree.effective(id, name) ?? serverDefault(deps, name);
      if (found) effectiveParams[name] = found;
    }
    const detail = { children: group.children ?? [], params: group.params, effectiveParams };
    sendAnswer(res, answerIn(formatOf(file), renderGroup(group, detail, formatOf(file))));
  });
}

/** What a parameter is where no group up to root sets it (SPEC §7.3); a taskUser has no default. */
function serverDefault(deps: AppDeps, name: GroupParam): EffectiveParam | undefined {
  switch (name) {
    case 'defaultRole':
      return { value: DEFAULT_ROLE, from: 'server' };
    case 'passwordHash':
      return { value: deps.config.passwordHash, from: 'server' };
    case 'country':
      return { value: DEFAULT_COUNTRY, from: 'server' };
    case 'taskUser':
      return undefined;
  }
}

/** The listing of a caller that may read only itself: that one user, if the page holds it. */
async function ownListing(deps: AppDeps, principal: Principal, only: string, page: Page): Promise<{ rows: NonNullable<Awaited<ReturnType<AppDeps['store']['findUser']>>>[]; rowCount?: number }> {
  const user = await deps.store.findUser(page.group ?? principal.scope, only);
  const all = user && (page.after === undefined || userKey(user.username) > page.after) ? [user] : [];
  return { rows: all.slice(page.start, page.start + page.limit), ...(page.countRows ? { rowCount: all.length } : {}) };
}
