import { createHash } from 'node:crypto';
import type { Config } from '../config';
import {
  deliveryBody,
  DELIVERY_ID_PREFIX,
  signatures,
  SUBSCRIPTION_STATES,
  type PendingDelivery,
  type StoredSubscription,
} from '../domain/webhooks';
import type { Logger } from '../log';
import type { DeliveryOutcome, Metrics, WebhookFigures } from '../metrics';
import type { DeliveryChange, Store, SubscribedEvent } from '../store/store';
import { ulid } from '../util/ulid';
import type { DeliveryJob, DeliveryRound } from './runner';
import { postWebhook, type AddressLookup, type PostOutcome } from './webhook-post';

export interface DeliveryDeps {
  store: Store;
  config: Pick<Config, 'webhookMaxEvents' | 'webhookTimeoutMs' | 'webhookRetryMs' | 'webhookSecretOverlapMs' | 'webhookAllowHosts'>;
  logger: Logger;
  metrics?: Metrics;
  /** How delivery hosts are resolved (getaddrinfo by default). */
  lookup?: AddressLookup;
}

/** Subscriptions delivered to at once: a slow endpoint does not hold the others up. */
const AT_ONCE = 8;
/** A round gives up on a subscription that batches keep changing under it, and comes back to it next round. */
const MAX_CHANGED = 3;

type Composed = { delivery: PendingDelivery; events: SubscribedEvent[] } | 'nothing' | 'changed';
type Step = { kind: 'sent' } | { kind: 'nothing' } | { kind: 'changed' } | { kind: 'wait'; until: number };

/** Which events a delivery carries: a retry must carry exactly these, or it is another delivery. */
function digestOf(events: readonly SubscribedEvent[]): string {
  return createHash('sha256').update(events.map((e) => e.seq).join(',')).digest('hex').slice(0, 32);
}

function outcomeOf(post: PostOutcome): DeliveryOutcome {
  if (post.kind !== 'answered') return post.kind;
  if (post.status >= 200 && post.status < 300) return 'delivered';
  return post.status === 410 ? 'gone' : 'rejected';
}

function describe(post: PostOutcome, timeoutMs: number): string {
  switch (post.kind) {
    case 'answered':
      return `the endpoint answered HTTP ${post.status}`;
    case 'timeout':
      return `the endpoint did not answer within ${timeoutMs / 1000} s`;
    case 'refused':
      return `refused: ${post.reason} (a webhook may not reach loopback, private, link-local or unspecified addresses)`;
    case 'failed':
      return `no connection: ${post.reason}`;
  }
}

async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  const worker = async (): Promise<void> => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
  };
  await Promise.all(Array.from({ length: Math.min(limit, queue.length) }, worker));
}

/**
 * Webhook deliveries (SPEC §10.2), a reader of the event feed: a subscription is a cursor into the
 * events plus the delivery being retried. Each round delivers, for every active subscription that
 * has something waiting, its events in seq order, up to --webhook-max-events per delivery, one
 * delivery at a time; the cursor moves only on a 2xx. A delivery is recorded (id, timestamp, the
 * events it carries) before it is sent, so its retries — also by another runner after a take-over —
 * carry the same `webhook-id` and body.
 */
export class WebhookDeliveries implements DeliveryJob {
  constructor(private readonly deps: DeliveryDeps) {}

  async deliverDue(now: number, signal: AbortSignal): Promise<DeliveryRound> {
    const active = (await this.deps.store.allSubscriptions()).filter((s) => s.state === 'active');
    if (active.length === 0) return {};
    const last = await this.deps.store.lastEventSeq();
    let nextRetryAt: number | undefined;
    const later = (at: number): void => void (nextRetryAt = Math.min(nextRetryAt ?? at, at));
    const due = active.filter((s) => {
      if (s.nextAttemptAt !== null && s.nextAttemptAt > now) {
        later(s.nextAttemptAt);
        return false;
      }
      return s.pending !== null || s.deliveredSeq < last;
    });
    await inParallel(due, AT_ONCE, async (s) => {
      const until = await this.drain(s.id, signal);
      if (until !== undefined) later(until);
    });
    return nextRetryAt === undefined ? {} : { nextRetryAt };
  }

  async retainableUpTo(): Promise<number> {
    const held = (await this.deps.store.allSubscriptions()).filter((s) => s.state !== 'inactive');
    return held.length === 0 ? Number.MAX_SAFE_INTEGER : Math.min(...held.map((s) => s.deliveredSeq));
  }

  /** Delivers to one subscription until nothing waits, a retry must wait (its time), or the runner stops. */
  private async drain(id: string, signal: AbortSignal): Promise<number | undefined> {
    let changed = 0;
    while (!signal.aborted && changed < MAX_CHANGED) {
      const step = await this.step(id);
      if (step.kind === 'nothing') return undefined;
      if (step.kind === 'wait' && step.until > Date.now()) return step.until;
      changed = step.kind === 'changed' ? changed + 1 : 0;
    }
    return undefined;
  }

  private async step(id: string): Promise<Step> {
    const s = await this.deps.store.findSubscription(id);
    if (!s || s.state !== 'active') return { kind: 'nothing' };
    if (s.nextAttemptAt !== null && s.nextAttemptAt > Date.now()) return { kind: 'wait', until: s.nextAttemptAt };
    const composed = await this.compose(s);
    if (composed === 'nothing' || composed === 'changed') return { kind: composed };
    return this.send(s, composed.delivery, composed.events);
  }

  /**
   * The delivery to make: the one being retried when it still carries the same events (the
   * subscription's scope is checked again each time), else a new one of the events after the cursor.
   * With none waiting, the cursor moves past the events that are not for this subscription.
   */
  private async compose(s: StoredSubscription): Promise<Composed> {
    const { store, config } = this.deps;
    const max = config.webhookMaxEvents;
    if (s.pending) {
      const events = await store.subscriptionEvents(s, s.deliveredSeq, s.pending.upTo, max);
      if (events.length > 0 && digestOf(events) === s.pending.digest) return { delivery: s.pending, events };
    }
    const last = await store.lastEventSeq();
    const events = await store.subscriptionEvents(s, s.deliveredSeq, last, max);
    const expected = { deliveredSeq: s.deliveredSeq, pendingId: s.pending?.id ?? null };
    if (events.length === 0) {
      if (last > s.deliveredSeq || s.pending) await store.recordDelivery(s.id, expected, { deliveredSeq: Math.max(last, s.deliveredSeq), pending: null, attempts: 0 });
      return 'nothing';
    }
    // A full delivery ends at its last event; one with room covers everything up to the last seq read.
    const upTo = events.length === max ? events[events.length - 1].seq : last;
    const delivery: PendingDelivery = { id: `${DELIVERY_ID_PREFIX}${ulid()}`, time: new Date().toISOString(), upTo, digest: digestOf(events) };
    const recorded = await store.recordDelivery(s.id, expected, { pending: delivery, attempts: 0, nextAttemptAt: null });
    return recorded ? { delivery, events } : 'changed';
  }

  /** The current secret, and the one it replaced while the overlap lasts. */
  private secretsOf(s: StoredSubscription, now: number): string[] {
    const overlapEnds = s.secretRotatedAt === null ? 0 : Date.parse(s.secretRotatedAt) + this.deps.config.webhookSecretOverlapMs;
    return s.previousSecret !== null && now < overlapEnds ? [s.secret, s.previousSecret] : [s.secret];
  }

  private async send(s: StoredSubscription, delivery: PendingDelivery, events: SubscribedEvent[]): Promise<Step> {
    const { config, store, logger, metrics } = this.deps;
    const body = deliveryBody(delivery.time, events.map((e) => e.json));
    const sentAt = Date.now();
    const timestamp = Math.floor(sentAt / 1000);
    const post = await postWebhook({
      url: s.url,
      headers: {
        'content-type': 'application/json',
        'user-agent': 'flexi-admin-webhooks',
        'webhook-id': delivery.id,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': signatures(this.secretsOf(s, sentAt), delivery.id, timestamp, body),
      },
      body,
      timeoutMs: config.webhookTimeoutMs,
      allowHosts: config.webhookAllowHosts,
      lookup: this.deps.lookup,
    });
    const outcome = outcomeOf(post);
    metrics?.webhookDeliveries.inc({ outcome });
    const time = new Date().toISOString();
    const lastDelivery = { seq: events[events.length - 1].seq, status: post.kind === 'answered' ? post.status : null, time };
    const expected = { deliveredSeq: s.deliveredSeq, pendingId: delivery.id };
    const fields = { subscription: s.id, delivery: delivery.id, events: events.length, outcome, ...(post.kind === 'answered' ? { status: post.status } : {}) };
    if (outcome === 'delivered') {
      const done = await store.recordDelivery(s.id, expected, { deliveredSeq: delivery.upTo, pending: null, attempts: 0, nextAttemptAt: null, lastDelivery, lastError: null });
      logger.debug('webhook delivered', fields);
      return done ? { kind: 'sent' } : { kind: 'changed' };
    }
    const attempts = (s.pending?.id === delivery.id ? s.attempts : 0) + 1;
    const error = describe(post, config.webhookTimeoutMs);
    let change: DeliveryChange;
    if (outcome === 'gone' || attempts > config.webhookRetryMs.length) {
      const why = outcome === 'gone' ? 'the endpoint answered 410 Gone' : `${error}; no retry left after ${attempts} attempts`;
      change = { state: 'suspended', attempts, nextAttemptAt: null, lastDelivery, lastError: { message: `suspended: ${why}`, time } };
      metrics?.webhookSuspensions.inc({ reason: outcome === 'gone' ? 'gone' : 'retries-exhausted' });
      logger.warn('webhook subscription suspended', { ...fields, attempts, error });
    } else {
      let wait = config.webhookRetryMs[attempts - 1];
      // 429 and 503 may say when to come back (SPEC §10.2); the back-off still applies when it says sooner.
      if (post.kind === 'answered' && (post.status === 429 || post.status === 503) && post.retryAfterMs !== undefined) wait = Math.max(wait, post.retryAfterMs);
      change = { attempts, nextAttemptAt: Date.now() + wait, lastDelivery, lastError: { message: error, time } };
      logger.info('webhook delivery failed; it will be retried', { ...fields, attempts, retryInMs: wait, error });
    }
    const recorded = await store.recordDelivery(s.id, expected, change);
    if (!recorded) return { kind: 'changed' };
    return change.state === 'suspended' ? { kind: 'nothing' } : { kind: 'wait', until: change.nextAttemptAt as number };
  }
}

/**
 * The webhook gauges of /metrics, read from the store at scrape time: subscriptions by state, and
 * the age of the oldest event waiting for any subscription of each state (0 when none waits).
 */
export async function webhookFigures(store: Store, now = Date.now()): Promise<WebhookFigures> {
  const figures = Object.fromEntries(SUBSCRIPTION_STATES.map((state) => [state, { subscriptions: 0, lagSeconds: 0 }])) as WebhookFigures;
  for (const s of await store.allSubscriptions()) {
    const f = figures[s.state];
    f.subscriptions += 1;
    if (s.state === 'inactive') continue;
    const [oldest] = await store.subscriptionEvents(s, s.deliveredSeq, Number.MAX_SAFE_INTEGER, 1);
    if (oldest) f.lagSeconds = Math.max(f.lagSeconds, Math.max(0, now - Date.parse(oldest.time)) / 1000);
  }
  return figures;
}
