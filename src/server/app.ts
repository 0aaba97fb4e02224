import express, { type NextFunction, type Request, type Response } from 'express';
import { describePrincipal, type Principal } from '../domain/principals';
import { FlexiError } from '../errors';
import { requireAuth, type AppDeps } from './context';
import { formatOf } from '../xml/winstrom';
import { errorHandler, sendEnvelope } from './envelope';
import { batchRoutes } from './routes/batch';
import { directoryRoutes } from './routes/directory';
import { eventRoutes } from './routes/events';
import { loginRoutes } from './routes/login';
import { metricsRoutes } from './routes/metrics';
import { statusRoutes } from './routes/status';
import { subscriptionRoutes } from './routes/subscriptions';

/** One JSON line per request; bodies, credentials and hashes are never among the fields. */
function requestLog(deps: AppDeps) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const started = process.hrtime.bigint();
    const { metrics } = deps;
    metrics.requestsInFlight.inc();
    res.once('close', () => metrics.requestsInFlight.dec());
    res.on('finish', () => {
      // A throttled attempt is refused before any check runs, so only its answer says it was one.
      if (res.statusCode === 429) metrics.authFailures.inc({ reason: 'throttled' });
      const principal = res.locals.principal as Principal | undefined;
      deps.logger.info('request', {
        method: req.method,
        path: req.path,
        status: res.statusCode,
        durationMs: Number((process.hrtime.bigint() - started) / 1000n) / 1000,
        batchId: res.locals.batchId,
        principal: principal ? describePrincipal(principal) : undefined,
        counts: res.locals.stats,
        error: res.locals.error,
      });
    });
    next();
  };
}

export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestLog(deps));
  const router = express.Router({ caseSensitive: true, strict: true });
  statusRoutes(router, deps);
  loginRoutes(router, deps);
  batchRoutes(router, deps);
  directoryRoutes(router, deps);
  eventRoutes(router, deps);
  subscriptionRoutes(router, deps);
  metricsRoutes(router, deps);
  app.use(router);
  // Every request but the public ones must be authenticated (SPEC §2), so unknown paths are
  // no exception: without credentials they answer 401 and reveal nothing about the routes.
  app.use(requireAuth(deps), (req: Request, res: Response) => {
    sendEnvelope(res, new FlexiError('not-found', `There is no endpoint ${req.method} ${req.path}.`), formatOf(req.path));
  });
  app.use(errorHandler(deps.logger));
  return app;
}
