import type { Config } from '../config';
import type { Logger } from '../log';
import type { Metrics } from '../metrics';
import type { Store } from '../store/store';
import { DateActions } from './date-actions';
import { WebhookDeliveries } from './deliveries';
import { TaskRunner, type DateActionsJob, type DeliveryJob } from './runner';

export interface TaskDeps {
  store: Store;
  config: Config;
  logger: Logger;
  /** The server's metrics, when the runner runs inside `serve`. */
  metrics?: Metrics;
}

/** The date actions (SPEC §10.3) and webhook deliveries (SPEC §10.2) over one store. */
export function createJobs(deps: TaskDeps): { dates?: DateActionsJob; deliveries?: DeliveryJob } {
  return { dates: new DateActions(deps.store, deps.logger), deliveries: new WebhookDeliveries(deps) };
}

/** A task runner with every job, as `serve` and `flexi-admin tasks` run it. */
export function createTaskRunner(deps: TaskDeps): TaskRunner {
  const { config } = deps;
  return new TaskRunner({
    store: deps.store,
    logger: deps.logger,
    leaseMs: config.taskLeaseMs,
    taskTime: config.taskTime,
    eventRetentionMs: config.eventRetentionMs,
    ...createJobs(deps),
    onRun: (what, outcome) => deps.metrics?.taskRuns.inc({ task: what, outcome }),
  });
}
