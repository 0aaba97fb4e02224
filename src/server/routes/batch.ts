import type { Request, RequestHandler, Response, Router } from 'express';
import { missingFor, NEEDS } from '../../domain/permissions';
import { ROOT_GROUP, type Principal } from '../../domain/principals';
import { FlexiError, isFlexiError } from '../../errors';
import { secondsSince } from '../../store/sql';
import { bodyText, xmlBody } from '../body';
import { principalOf, readableUserOnly, requireAuth, type AppDeps } from '../context';
import { answerIn, sendAnswer } from '../answer';

/** Who may use an endpoint; throws 403 with the reason otherwise. */
type Gate = (principal: Principal, deps: AppDeps) => Promise<void>;

const credentialOnly: Gate = async (principal) => {
  if (principal.kind === 'session') {
    throw new FlexiError('forbidden', '/admin/batch takes a client certificate or server credentials; a logged-in user sends its batches to /v2/admin/batch.');
  }
};

/** SPEC §6: a logged-in user needs manageAll and licenseManagement (NEEDS.sendSessionBatch) to send batches at all. */
const sessionAdmin: Gate = async (principal, deps) => {
  if (principal.kind !== 'session' || !principal.actingUser) {
    throw new FlexiError('forbidden', '/v2/admin/batch is for logged-in users (X-authSessionId); certificates and server credentials use /admin/batch.');
  }
  // The session's user may live above the tenant the session works in (SPEC §7.5).
  const user = await deps.store.findUserRecord(ROOT_GROUP, principal.actingUser);
  if (!user || missingFor('sendSessionBatch', user.permissions) !== undefined) {
    const needed = NEEDS.sendSessionBatch.allOf.join(' and ');
    throw new FlexiError('forbidden', `User ${principal.actingUser} needs the ${needed} permissions to send batches.`);
  }
};

function applyBatch(deps: AppDeps, gate: Gate): RequestHandler[] {
  return [
    requireAuth(deps),
    async (_req: Request, res: Response, next) => {
      await gate(principalOf(res), deps);
      next();
    },
    xmlBody(deps.config.bodyLimit),
    async (req: Request, res: Response) => {
      const receivedAt = new Date();
      const started = process.hrtime.bigint();
      const { metrics } = deps;
      let outcome;
      try {
        outcome = await deps.executor.execute(bodyText(req), principalOf(res), receivedAt);
      } catch (err) {
        // A batch refused as a whole (400, 409, 413, 503…) is counted by its error code.
        const code = isFlexiError(err) ? err.code : 'internal';
        metrics.batches.inc({ outcome: code });
        metrics.batchDuration.observe({ outcome: code }, secondsSince(started));
        throw err;
      }
      const kind = outcome.dryRun ? 'dry-run' : 'applied';
      metrics.batches.inc({ outcome: kind });
      metrics.batchDuration.observe({ outcome: kind }, secondsSince(started));
      for (const [key, n] of outcome.byEntity) {
        const [entity, status] = key.split('\u0000');
        metrics.operations.inc({ entity, status }, n);
      }
      res.locals.batchId = outcome.batchId;
      res.locals.stats = outcome.stats;
      // The task runner delivers the batch's events once the answer has been handed over (or the
      // client went away: 'close' comes either way): deliveries built and posted while a large
      // answer is still being written would delay it. The runner's poll covers a missed wake.
      if (outcome.events > 0 && deps.onEventsAnswered) res.once('close', deps.onEventsAnswered);
      sendAnswer(res, answerIn('xml', outcome.xml));
    },
  ];
}

export function batchRoutes(router: Router, deps: AppDeps): void {
  const v1 = applyBatch(deps, credentialOnly);
  router.put('/admin/batch', ...v1);
  router.post('/admin/batch', ...v1);
  const v2 = applyBatch(deps, sessionAdmin);
  router.put('/v2/admin/batch', ...v2);
  router.post('/v2/admin/batch', ...v2);

  router.get('/admin/batch/:id', requireAuth(deps), async (req, res) => {
    const id = String(req.params.id);
    const principal = principalOf(res);
    const sentBy = await readableUserOnly(principal, deps.store);
    // An entry one may not see is answered exactly as one that was never journalled.
    const entry = await deps.store.findLatestJournal(principal.scope, id, { sentBy });
    if (!entry) throw new FlexiError('not-found', `No batch with id ${id} has been executed in your scope.`);
    res.locals.batchId = id;
    sendAnswer(res, answerIn('xml', entry.resultXml));
  });
}
