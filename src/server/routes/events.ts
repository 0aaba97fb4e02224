import type { Request, Router } from 'express';
import { FlexiError } from '../../errors';
import { sendAnswer } from '../answer';
import { principalOf, readableUserOnly, requireAuth, type AppDeps } from '../context';

/** The page size of the feed when a request names none, and the most it gives (SPEC §10.1). */
export const EVENTS_DEFAULT_LIMIT = 100;
export const EVENTS_MAX_LIMIT = 1000;

function wholeNumber(req: Request, name: string, min: number, max: number): number | undefined {
  const value = req.query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^\d{1,16}$/.test(value) || Number(value) < min || Number(value) > max) {
    const shown = typeof value === 'string' ? `'${value.slice(0, 40)}'` : 'given more than once';
    throw new FlexiError('bad-request', `The query parameter ${name} must be a whole number from ${min} to ${max}, not ${shown}.`);
  }
  return Number(value);
}

/**
 * `GET /events.json?after=SEQ&limit=N`: the feed of committed changes in the caller's scope, in
 * commit order, `{"events": [...], "next": SEQ}`; asking again with `after=next` continues it. A
 * caller acting as a user needs what reading other users needs (manageAll or createUser): the
 * feed tells of everyone's changes.
 */
export function eventRoutes(router: Router, deps: AppDeps): void {
  router.get('/events.json', requireAuth(deps), async (req, res) => {
    const principal = principalOf(res);
    const after = wholeNumber(req, 'after', 0, Number.MAX_SAFE_INTEGER) ?? 0;
    const limit = wholeNumber(req, 'limit', 1, EVENTS_MAX_LIMIT) ?? EVENTS_DEFAULT_LIMIT;
    if ((await readableUserOnly(principal, deps.store)) !== undefined) {
      throw new FlexiError('forbidden', 'Reading the event feed needs the permission manageAll or createUser: it tells of the changes of every user in the scope.');
    }
    const page = await deps.store.listEvents(principal.scope, after, limit);
    sendAnswer(res, { type: 'application/json', body: `{"events":[${page.events.join(',')}],"next":${page.next}}\n` });
  });
}
