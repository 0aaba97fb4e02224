import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { SUBSCRIPTION_STATES, type SubscriptionState } from './domain/webhooks';

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

/** What became of one webhook delivery attempt (SPEC §10.2). */
export const DELIVERY_OUTCOMES = ['delivered', 'rejected', 'gone', 'timeout', 'failed', 'refused'] as const;
export type DeliveryOutcome = (typeof DELIVERY_OUTCOMES)[number];
export const SUSPENSION_REASONS = ['gone', 'retries-exhausted'] as const;

/** The webhook figures read from the store at each scrape, by subscription state. */
export type WebhookFigures = Record<SubscriptionState, { subscriptions: number; lagSeconds: number }>;

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
  /** Webhook delivery attempts by outcome: delivered (2xx), rejected (another answer), gone (410), timeout, failed (no connection), refused (a refused address). */
  readonly webhookDeliveries: Counter<'outcome'>;
  readonly webhookSuspensions: Counter<'reason'>;
  /** Where the webhook gauges come from at scrape time (the server sets it once its store is open). */
  watchWebhooks(source: () => Promise<WebhookFigures>): void;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const seconds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
  const authFailures = new Counter({ name: 'flexi_auth_failures_total', help: 'Failed authentications by reason', labelNames: ['reason'], registers: [registry] });
  // Every reason is listed from the start, at 0, so that a rate over it is defined before the first failure.
  for (const reason of AUTH_FAILURES) authFailures.inc({ reason }, 0);
  const taskRuns = new Counter({ name: 'flexi_task_runs_total', help: 'Rounds of the task runner by task and outcome', labelNames: ['task', 'outcome'], registers: [registry] });
  const webhookDeliveries = new Counter({ name: 'flexi_webhook_deliveries_total', help: 'Webhook delivery attempts by outcome', labelNames: ['outcome'], registers: [registry] });
  for (const outcome of DELIVERY_OUTCOMES) webhookDeliveries.inc({ outcome }, 0);
  const webhookSuspensions = new Counter({ name: 'flexi_webhook_suspensions_total', help: 'Webhook subscriptions suspended, by reason', labelNames: ['reason'], registers: [registry] });
  for (const reason of SUSPENSION_REASONS) webhookSuspensions.inc({ reason }, 0);
  // Both gauges come from one read of the store per scrape (kept for a second, so the two agree).
  let source: (() => Promise<WebhookFigures>) | undefined;
  let read: { at: number; figures: Promise<WebhookFigures> } | undefined;
  const figures = (): Promise<WebhookFigures> | undefined => {
    if (!source) return undefined;
    if (!read || Date.now() - read.at > 1000) read = { at: Date.now(), figures: source() };
    return read.figures;
  };
  const webhookGauge = (name: string, help: string, pick: (f: WebhookFigures[keyof WebhookFigures]) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['state'],
      registers: [registry],
      async collect() {
        const now = figures();
        if (!now) return;
        // A store that cannot answer right now leaves the last figures in place rather than failing the scrape.
        const known = await now.catch(() => undefined);
        if (known) for (const state of SUBSCRIPTION_STATES) this.set({ state }, pick(known[state]));
      },
    });
  };
  webhookGauge('flexi_webhook_subscriptions', 'Webhook subscriptions by state', (f) => f.subscriptions);
  webhookGauge('flexi_webhook_delivery_lag_seconds', 'Age of the oldest event not yet delivered, over the subscriptions of each state (0: none waiting)', (f) => f.lagSeconds);
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
    webhookDeliveries,
    webhookSuspensions,
    watchWebhooks: (from) => void (source = from),
  };
}
