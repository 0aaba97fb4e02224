import type { Router } from 'express';
import { isFlexiError } from '../../errors';
import type { AppDeps } from '../context';
import { answerIn, sendAnswer } from '../answer';
import { STORE_GONE_PUBLIC } from '../envelope';

/** Liveness and store health for load balancers: no authentication, no data. */
export function statusRoutes(router: Router, deps: AppDeps): void {
  router.get('/status.json', async (_req, res) => {
    let status: 'ok' | 'store-unavailable' | 'store-gone' = 'ok';
    try {
      await deps.store.ping();
    } catch (err) {
      status = isFlexiError(err) && err.code === 'store-gone' ? 'store-gone' : 'store-unavailable';
    }
    const body = {
      status,
      store: { kind: deps.store.kind, ok: status === 'ok', ...(status === 'store-gone' ? { error: STORE_GONE_PUBLIC } : {}) },
      limits: { bodyBytes: deps.config.bodyLimit, operations: deps.config.maxOperations },
    };
    sendAnswer(res, answerIn('json', JSON.stringify(body), status === 'ok' ? 200 : 503));
  });
}
