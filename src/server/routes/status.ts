import type { Router } from 'express';
import type { AppDeps } from '../context';

/** Liveness and store health for load balancers: no authentication, no data. */
export function statusRoutes(router: Router, deps: AppDeps): void {
  router.get('/status.json', async (_req, res) => {
    let storeOk = true;
    try {
      await deps.store.ping();
    } catch {
      storeOk = false;
    }
    res.status(storeOk ? 200 : 503).json({
      status: storeOk ? 'ok' : 'store-unavailable',
      store: { kind: deps.store.kind, ok: storeOk },
      limits: { bodyBytes: deps.config.bodyLimit, operations: deps.config.maxOperations },
    });
  });
}
