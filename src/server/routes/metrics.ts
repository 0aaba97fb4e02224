import type { Router } from 'express';
import { ROOT_GROUP } from '../../domain/principals';
import { FlexiError } from '../../errors';
import { sendAnswer } from '../answer';
import { principalOf, requireAuth, type AppDeps } from '../context';

/**
 * Prometheus text of the server's metrics (src/metrics.ts). Operators' figures span every tenant,
 * so only a root-scope certificate or the server password reads them; sessions and
 * impersonation are refused (403), anonymous requests are not authenticated (401).
 */
export function metricsRoutes(router: Router, deps: AppDeps): void {
  router.get('/metrics', requireAuth(deps), async (_req, res) => {
    const principal = principalOf(res);
    const operator = (principal.kind === 'certificate' || principal.kind === 'password') && principal.scope === ROOT_GROUP && principal.actingUser === undefined;
    if (!operator) {
      throw new FlexiError('forbidden', '/metrics is for the operators: a root-scope client certificate or the server password, without X-FlexiBee-Authorization.');
    }
    const { registry } = deps.metrics;
    sendAnswer(res, { type: registry.contentType.split(';')[0], body: await registry.metrics() });
  });
}
