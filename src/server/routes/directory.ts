import type { Router } from 'express';
import { userKey } from '../../domain/users';
import { FlexiError } from '../../errors';
import { formatOf } from '../../xml/winstrom';
import { isRootScope, principalOf, readableUserOnly, requireAuth, type AppDeps } from '../context';
import { answerIn, sendAnswer } from '../answer';
import { renderCompanies, renderUser, renderUsers } from '../../xml/views';


/**
 * Read-only listings of users (`/u…`) and companies (`/c…`) within the caller's scope; a caller
 * acting as a user without manageAll or createUser sees only that user (SPEC §6).
 */
export function directoryRoutes(router: Router, deps: AppDeps): void {
  for (const path of ['/u.json', '/u.xml']) {
    router.get(path, requireAuth(deps), async (_req, res) => {
      const { scope } = principalOf(res);
      const only = await readableUserOnly(principalOf(res), deps.store);
      const users = only === undefined ? await deps.store.listUsers(scope) : [await deps.store.findUser(scope, only)].filter((u) => u !== undefined);
      sendAnswer(res, answerIn(formatOf(path), renderUsers(users, formatOf(path))));
    });
  }

  router.get('/u/:file', requireAuth(deps), async (req, res) => {
    const file = String(req.params.file);
    const m = /^(.+)\.(json|xml)$/.exec(file);
    if (!m) throw new FlexiError('not-found', `Ask for /u/${file}.json or /u/${file}.xml.`);
    const { scope } = principalOf(res);
    const only = await readableUserOnly(principalOf(res), deps.store);
    // A user one may not see is answered exactly as one that does not exist, after the same lookup.
    const user = await deps.store.findUser(scope, m[1]);
    if (!user || (only !== undefined && userKey(m[1]) !== only)) throw new FlexiError('not-found', `User ${m[1]} does not exist.`);
    sendAnswer(res, answerIn(formatOf(file), renderUser(user, formatOf(file))));
  });

  for (const path of ['/c.json', '/c.xml']) {
    router.get(path, requireAuth(deps), async (_req, res) => {
      const principal = principalOf(res);
      const companies = await deps.store.listCompanies(principal.scope, { includeHidden: isRootScope(principal) });
      sendAnswer(res, answerIn(formatOf(path), renderCompanies(companies, formatOf(path))));
    });
  }
}
