import type { Router } from 'express';
import { FlexiError } from '../../errors';
import { bodyText, xmlBody } from '../body';
import { principalOf, requireAuth, type AppDeps } from '../context';

export function batchRoutes(router: Router, deps: AppDeps): void {
  const apply = [
    requireAuth(deps),
    xmlBody(deps.config.bodyLimit),
    async (req: import('express').Request, res: import('express').Response) => {
      const receivedAt = new Date();
      const outcome = await deps.executor.execute(bodyText(req), principalOf(res), receivedAt);
      res.locals.batchId = outcome.batchId;
      res.locals.stats = outcome.stats;
      res.type('application/xml').send(outcome.xml);
    },
  ];
  router.put('/admin/batch', ...apply);
  router.post('/admin/batch', ...apply);

  router.get('/admin/batch/:id', requireAuth(deps), async (req, res) => {
    const id = String(req.params.id);
    const entry = await deps.store.findLatestJournal(principalOf(res).scope, id);
    if (!entry) throw new FlexiError('not-found', `No batch with id ${id} has been executed in your scope.`);
    res.locals.batchId = id;
    res.type('application/xml').send(entry.resultXml);
  });
}
