import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Why an authentication failed, as a bounded label (the log line says the rest). */
export const AUTH_FAILURES = [
  'no-certificate',
  'certificate-unregistered',
  'certificate-expired',
  'certificate-chain',
  'malformed-authorization',
  'password-auth-off',
  'wrong-server-password',
  'session-unknown',
  'session-user-unavailable',
  'login-failed',
  'login-blocked',
  'logout-without-session',
  'throttled',
] as const;
export type AuthFailure = (typeof AUTH_FAILURES)[number];

/**
 * What the server counts for `GET /metrics` (Prometheus text, prom-client). One registry per
 * server, so that several servers in one process (the tests) do not share counts; the process's
 * own metrics (CPU, memory, event loop lag, handles) come with it.
 */
export interface Metrics {
  readonly registry: Registry;
  /** Executed batches by outcome: applied, dry-run, or the error code of a batch that was not executed. */
  readonly batches: Counter<'outcome'>;
  readonly batchDuration: Histogram<'outcome'>;
  readonly operations: Counter<'entity' | 'status'>;
  readonly authFailures: Counter<'reason'>;
  /** The durable commit of a batch (on SQLite: of a group of batches). */
  readonly storeCommit: Histogram<'store'>;
  readonly requestsInFlight: Gauge;
  /** Rounds of the task runner (SPEC §10.4) by task (dates, deliveries, retention) and outcome (ok, error). */
  readonly taskRuns: Counter<'task' | 'outcome'>;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const seconds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
  const authFailures = new Counter({ name: 'flexi_auth_failures_total', help: 'Failed authentications by reason', labelNames: ['reason'], registers: [registry] });
  // Every reason is listed from the start, at 0, so that a rate over it is defined before the first failure.
  for (const reason of AUTH_FAILURES) authFailures.inc({ reason }, 0);
  const taskRuns = new Counter({ name: 'flexi_task_runs_total', help: 'Rounds of the task runner by task and outcome', labelNames: ['task', 'outcome'], registers: [registry] });
  return {
    registry,
    batches: new Counter({ name: 'flexi_batches_total', help: 'Batches by outcome', labelNames: ['outcome'], registers: [registry] }),
    batchDuration: new Histogram({
      name: 'flexi_batch_duration_seconds',
      help: 'Time from the whole body received to the answer, by outcome',
      labelNames: ['outcome'],
      buckets: seconds,
      registers: [registry],
    }),
    operations: new Counter({ name: 'flexi_operations_total', help: 'Operations of executed batches by entity and status', labelNames: ['entity', 'status'], registers: [registry] }),
    authFailures,
    storeCommit: new Histogram({ name: 'flexi_store_commit_duration_seconds', help: 'Durable commits of batches', labelNames: ['store'], buckets: seconds, registers: [registry] }),
    requestsInFlight: new Gauge({ name: 'flexi_http_requests_in_flight', help: 'HTTP requests being received or answered', registers: [registry] }),
    taskRuns,
  };
}
