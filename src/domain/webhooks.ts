import { createHmac, timingSafeEqual } from 'node:crypto';
import { forbiddenAddress, isAddressLiteral, isLoopbackName } from './addresses';
import { EVENT_TYPES, type EventType, type EventActor } from './events';

/**
 * Webhook subscriptions (SPEC §10.2): what a `<subscription>` holds, the rules of its fields, and
 * the Standard Webhooks form of a delivery (standardwebhooks.com). Pure: the planner, the
 * deliverer and the listing share these.
 */
export const SUBSCRIPTION_ID_PATTERN = /^[a-z0-9_-]{1,64}$/;

/** `active` delivers; `suspended` stopped after a 410 or the last retry and keeps its events; `inactive` was switched off. */
export const SUBSCRIPTION_STATES = ['active', 'suspended', 'inactive'] as const;
export type SubscriptionState = (typeof SUBSCRIPTION_STATES)[number];

/** Who created a subscription: the credential and the acting user, as events name them (`actor`). */
export type SubscriptionOwner = EventActor;

/** A subscription as a batch sees and sets it. */
export interface SubscriptionRecord {
  id: string;
  /** The URL as WHATWG parsing writes it (`href`). */
  url: string;
  /** Event types and prefixes with `*`, unique and sorted; `['*']` is every type. */
  events: string[];
  secret: string;
  excludeOwn: boolean;
  licenseGroup: string;
  state: SubscriptionState;
  owner: SubscriptionOwner;
}

/** The delivery being made (or retried): the same id, timestamp and events on every attempt. */
export interface PendingDelivery {
  id: string;
  /** The body's `timestamp`: when the delivery was composed. */
  time: string;
  /** The last seq its range covers (events after the cursor up to here). */
  upTo: number;
  /** Which events it carries, so a retry that would carry others (the scope changed) starts a new delivery. */
  digest: string;
}

/** A subscription with what the deliverer keeps of it. */
export interface StoredSubscription extends SubscriptionRecord {
  /** Every event up to this seq has been delivered or is not for this subscription. */
  deliveredSeq: number;
  pending: PendingDelivery | null;
  /** Failed attempts of the pending delivery. */
  attempts: number;
  /** When the next attempt is due (epoch ms); null: as soon as there is something to send. */
  nextAttemptAt: number | null;
  /** The secret a new one replaced, still signing until secretRotatedAt + --webhook-secret-overlap. */
  previousSecret: string | null;
  secretRotatedAt: string | null;
  lastDelivery: { seq: number; status: number | null; time: string } | null;
  lastError: { message: string; time: string } | null;
  createdAt: string;
}

/** GET /subscriptions.json: everything but the secrets. */
export interface SubscriptionView {
  id: string;
  url: string;
  events: string[];
  licenseGroup: string;
  owner: SubscriptionOwner;
  state: SubscriptionState;
  excludeOwn: boolean;
  /** Events waiting for it (0 when inactive). */
  pending: number;
  lastDelivery: StoredSubscription['lastDelivery'];
  lastError: StoredSubscription['lastError'];
  /** When a failed delivery is tried again. */
  nextAttemptAt: string | null;
  /** Until when the replaced secret still signs beside the new one. */
  previousSecretUntil: string | null;
  createdAt: string;
}

/** A stored subscription as GET /subscriptions.json shows it: never a secret. */
export function subscriptionView(s: StoredSubscription, waiting: number, secretOverlapMs: number): SubscriptionView {
  const overlapEnds = s.secretRotatedAt === null || s.previousSecret === null ? null : Date.parse(s.secretRotatedAt) + secretOverlapMs;
  return {
    id: s.id,
    url: s.url,
    events: s.events,
    licenseGroup: s.licenseGroup,
    owner: s.owner,
    state: s.state,
    excludeOwn: s.excludeOwn,
    pending: s.state === 'inactive' ? 0 : waiting,
    lastDelivery: s.lastDelivery,
    lastError: s.lastError,
    nextAttemptAt: s.state === 'active' && s.nextAttemptAt !== null ? new Date(s.nextAttemptAt).toISOString() : null,
    previousSecretUntil: overlapEnds !== null && overlapEnds > Date.now() ? new Date(overlapEnds).toISOString() : null,
    createdAt: s.createdAt,
  };
}

type Reading<T> = { value: T } | { error: string };

// ── <events> ────────────────────────────────────────────────────────────────────────────

export const MAX_EVENT_PATTERNS = 64;
const ALL_EVENTS = '*';

/**
 * `<events>`: types and prefixes followed by `*`, separated by white space; empty or absent is every
 * type. Each must name a type or be the prefix of at least one, so that a typo is FAILED rather than
 * a subscription that never receives anything.
 */
export function readEventPatterns(text: string): Reading<string[]> {
  const tokens = text.split(/\s+/).filter((t) => t.length > 0);
  if (tokens.length > MAX_EVENT_PATTERNS) return { error: `<events> may name at most ${MAX_EVENT_PATTERNS} event types or patterns` };
  for (const token of tokens) {
    const star = token.indexOf('*');
    if (star >= 0 && star !== token.length - 1) return { error: `event pattern '${token.slice(0, 80)}' is not valid: '*' may only end a pattern, as in USER_*` };
    if (star < 0 && !(EVENT_TYPES as readonly string[]).includes(token)) {
      return { error: `unknown event type '${token.slice(0, 80)}'; expected ${EVENT_TYPES.join(', ')}, or a prefix followed by * such as USER_*` };
    }
    if (star >= 0 && !EVENT_TYPES.some((t) => t.startsWith(token.slice(0, -1)))) {
      return { error: `event pattern '${token.slice(0, 80)}' matches no event type; expected a prefix of ${EVENT_TYPES.join(', ')} followed by *` };
    }
  }
  return { value: canonicalPatterns(tokens) };
}

/** Unique and sorted, so that the same set of patterns in another order is the same subscription; `*` alone when it is there. */
export function canonicalPatterns(patterns: readonly string[]): string[] {
  if (patterns.length === 0 || patterns.includes(ALL_EVENTS)) return [ALL_EVENTS];
  return [...new Set(patterns)].sort();
}

/** The event types the patterns match; undefined for every type. */
export function typesOf(patterns: readonly string[]): EventType[] | undefined {
  if (patterns.includes(ALL_EVENTS)) return undefined;
  return EVENT_TYPES.filter((t) => patterns.some((p) => (p.endsWith('*') ? t.startsWith(p.slice(0, -1)) : p === t)));
}

// ── <secret> ────────────────────────────────────────────────────────────────────────────

/** Standard Webhooks: keys SHOULD be between 24 bytes (192 bits) and 64 bytes (512 bits). */
export const SECRET_BYTES = { min: 24, max: 64 } as const;
const SECRET_PREFIX = 'whsec_';

/** The key of a secret: the base64-decoded part after `whsec_`. */
export function secretKey(secret: string): Buffer {
  return Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
}

/**
 * `<secret>`: `whsec_` and standard base64 of 24 to 64 bytes, kept with its padding (as the Standard
 * Webhooks libraries write it) whether it came with it or not. No message ever shows the value.
 */
export function readSecret(text: string): Reading<string> {
  const form = `<secret> must be whsec_ followed by the base64 of ${SECRET_BYTES.min} to ${SECRET_BYTES.max} random bytes (whsec_ and 32 to 88 base64 characters)`;
  const encoded = text.startsWith(SECRET_PREFIX) ? text.slice(SECRET_PREFIX.length) : undefined;
  if (encoded === undefined || encoded.length > 100 || !/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) return { error: form };
  const key = Buffer.from(encoded, 'base64');
  // Only canonical base64: text that decodes to the same bytes as another text would compare unequal.
  if (key.toString('base64').replace(/=+$/, '') !== encoded.replace(/=+$/, '')) return { error: form };
  if (key.length < SECRET_BYTES.min || key.length > SECRET_BYTES.max) return { error: `${form}; this one holds ${key.length} bytes` };
  return { value: `${SECRET_PREFIX}${key.toString('base64')}` };
}

/** Compares two secrets without telling, by its time, how much of them agrees. */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

// ── <url> and where it may lead ─────────────────────────────────────────────────────────

export const MAX_URL_LENGTH = 2048;

/**
 * `<url>`: an absolute http(s) URL without credentials or fragment, as WHATWG parsing writes it
 * (so `HTTPS://Hooks.Example.com` and `https://hooks.example.com/` are one URL). Whether http:// and
 * its host are allowed is the planner's to say (webhookTargetProblem), with the server's settings.
 */
export function readWebhookUrl(text: string): Reading<string> {
  if (text.length > MAX_URL_LENGTH) return { error: `<url> is longer than ${MAX_URL_LENGTH} characters` };
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { error: `<url> must be an absolute https:// URL, not '${text.slice(0, 200)}'` };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return { error: `<url> must be an https:// URL, not '${text.slice(0, 200)}'` };
  if (url.username || url.password) return { error: '<url> must not hold a user name or password: they would show wherever the subscription is listed' };
  if (url.hash) return { error: '<url> must not have a #fragment, which is never sent' };
  return { value: url.href };
}

/** A host as the rules compare and resolve it: lower case, no final dot, IPv6 without brackets, WHATWG's form of an address. */
export function normalHost(host: string): string {
  const bare = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  try {
    return new URL(`http://${bare.includes(':') ? `[${bare}]` : bare}/`).hostname.replace(/^\[(.*)\]$/, '$1');
  } catch {
    return bare;
  }
}

/** The host of a webhook URL as the rules compare it. */
export function urlHost(url: string): string {
  return normalHost(new URL(url).hostname);
}

export function isAllowedHost(host: string, allowHosts: readonly string[]): boolean {
  const wanted = normalHost(host);
  return allowHosts.some((h) => normalHost(h) === wanted);
}

/** What DNS answered for a host name, before the batch was planned. */
export type HostResolution = { addresses: string[] } | { error: string };

/** What the planner knows of the network for `<url>`: the server's allowed hosts, and the names resolved ahead. */
export interface WebhookRules {
  allowHosts: readonly string[];
  resolved: ReadonlyMap<string, HostResolution>;
}

const REFUSED = 'a webhook may not reach loopback, private, link-local or unspecified addresses';

/**
 * Why a webhook may not be sent to `url` (already read by readWebhookUrl), or undefined. A host of
 * `allowHosts` may be anything and use http://; any other host must be https:// and must neither
 * be nor resolve to a refused address (every address it resolves to counts).
 */
export function webhookTargetProblem(url: string, rules: WebhookRules): string | undefined {
  const parsed = new URL(url);
  const host = normalHost(parsed.hostname);
  const allowed = isAllowedHost(host, rules.allowHosts);
  if (parsed.protocol !== 'https:' && !allowed) return `<url> must be an https:// URL (http:// only for the hosts of --webhook-allow-hosts), not '${url}'`;
  if (allowed) return undefined;
  const refused = (why: string): string => `the webhook URL ${url} is refused: ${why} (${REFUSED})`;
  if (isAddressLiteral(host)) {
    const rule = forbiddenAddress(host);
    return rule && refused(`${host} is ${rule}`);
  }
  if (isLoopbackName(host)) return refused(`${host} is a loopback name`);
  const resolution = rules.resolved.get(host);
  if (!resolution) return `the host ${host} of the webhook URL could not be resolved`;
  if ('error' in resolution) return `the host ${host} of the webhook URL could not be resolved (${resolution.error})`;
  if (resolution.addresses.length === 0) return `the host ${host} of the webhook URL resolves to no address`;
  for (const address of resolution.addresses) {
    const rule = forbiddenAddress(address);
    if (rule) return refused(`${host} resolves to ${address}, ${rule}`);
  }
  return undefined;
}

// ── a delivery, as Standard Webhooks has it ─────────────────────────────────────────────

/** `msg_` + a ULID: one per delivery, the same on its retries. */
export const DELIVERY_ID_PREFIX = 'msg_';

/** The body of a delivery: its events (their feed JSON, in seq order) under `data.events`. */
export function deliveryBody(timestamp: string, events: readonly string[]): string {
  return `{"type":"flexi.events","timestamp":${JSON.stringify(timestamp)},"data":{"events":[${events.join(',')}]}}`;
}

/**
 * `webhook-signature`: `v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` for each secret (the
 * current one first), space-separated.
 */
export function signatures(secrets: readonly string[], id: string, timestamp: number, body: string): string {
  return secrets.map((secret) => `v1,${createHmac('sha256', secretKey(secret)).update(`${id}.${timestamp}.${body}`).digest('base64')}`).join(' ');
}
