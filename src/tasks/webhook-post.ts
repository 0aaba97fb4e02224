import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import { forbiddenAddress, isAddressLiteral, isLoopbackName } from '../domain/addresses';
import { isAllowedHost, normalHost } from '../domain/webhooks';

/** Every address a host name resolves to (getaddrinfo by default, as node:https would connect). */
export type AddressLookup = (host: string, callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => void;

const systemLookup: AddressLookup = (host, callback) => dnsLookup(host, { all: true, verbatim: true }, callback);

export interface WebhookPost {
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  /** --webhook-allow-hosts: these may be anything, and http://. */
  allowHosts: readonly string[];
  lookup?: AddressLookup;
}

export type PostOutcome =
  | { kind: 'answered'; status: number; retryAfterMs?: number }
  | { kind: 'timeout' }
  | { kind: 'refused'; reason: string }
  | { kind: 'failed'; reason: string };

/** A Retry-After larger than this is read as this: a day without deliveries is long enough to notice. */
const MAX_RETRY_AFTER_MS = 86_400_000;
/** Of an answer's body only this much is read: the status is the answer. */
const MAX_ANSWER_BYTES = 64 * 1024;

/** `Retry-After`: seconds or an HTTP date (RFC 9110), as milliseconds from now; undefined when absent or unreadable. */
export function retryAfterMs(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined) return undefined;
  const trimmed = text.trim();
  const ms = /^\d{1,10}$/.test(trimmed) ? Number(trimmed) * 1000 : Date.parse(trimmed) - now;
  return Number.isNaN(ms) ? undefined : Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms));
}

class RefusedAddress extends Error {}

/**
 * The second check of SPEC §10.2, at delivery: the host is resolved here, and the connection goes
 * only to the addresses this check passed (node connects to what `lookup` answers). A name whose
 * DNS changed since the subscription was made (rebinding) is refused like a literal address.
 */
function guardedLookup(host: string, allowed: boolean, lookup: AddressLookup): LookupFunction {
  return (hostname, options, callback) => {
    lookup(hostname, (err, addresses) => {
      if (err) return callback(err, '', 0);
      if (!allowed) {
        for (const a of addresses) {
          const rule = forbiddenAddress(a.address);
          if (rule) return callback(new RefusedAddress(`${host} resolves to ${a.address}, ${rule}`), '', 0);
        }
      }
      const usable = options.family === 4 || options.family === 6 ? addresses.filter((a) => a.family === options.family) : addresses;
      if (usable.length === 0) return callback(Object.assign(new Error(`${host} resolves to no usable address`), { code: 'ENOTFOUND' }), '', 0);
      if (options.all) return (callback as unknown as (e: null, all: LookupAddress[]) => void)(null, usable);
      return callback(null, usable[0].address, usable[0].family);
    });
  };
}

/** Why a URL may not be posted to before any connection is tried; undefined when a connection may be tried. */
function refusedBeforeConnecting(url: URL, allowed: boolean): string | undefined {
  if (allowed) return undefined;
  const host = normalHost(url.hostname);
  if (url.protocol !== 'https:') return `http:// is allowed only for the hosts of --webhook-allow-hosts, not ${host}`;
  if (isAddressLiteral(host)) {
    const rule = forbiddenAddress(host);
    return rule && `${host} is ${rule}`;
  }
  return isLoopbackName(host) ? `${host} is a loopback name` : undefined;
}

/**
 * POSTs one delivery and says what became of it within `timeoutMs`: the status (and Retry-After)
 * of an answer, a timeout, a refused address, or a connection that failed. Never follows a
 * redirect (a 3xx is an answer like any other), never reuses a connection, never throws.
 */
export function postWebhook(post: WebhookPost): Promise<PostOutcome> {
  const url = new URL(post.url);
  const allowed = isAllowedHost(url.hostname, post.allowHosts);
  const refused = refusedBeforeConnecting(url, allowed);
  if (refused) return Promise.resolve({ kind: 'refused', reason: refused });
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<PostOutcome>((resolve) => {
    let settled = false;
    const done = (outcome: PostOutcome): void => {
      if (settled) return;
      settled = true;
      resolve(outcome);
    };
    const req = send(
      url,
      {
        method: 'POST',
        headers: { ...post.headers, 'content-length': String(Buffer.byteLength(post.body)) },
        agent: false,
        lookup: guardedLookup(normalHost(url.hostname), allowed, post.lookup ?? systemLookup),
      },
      (res) => {
        done({ kind: 'answered', status: res.statusCode ?? 0, retryAfterMs: retryAfterMs(res.headers['retry-after']) });
        let read = 0;
        res.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_ANSWER_BYTES) res.destroy();
        });
        res.on('error', () => undefined);
        res.on('close', () => clearTimeout(timer));
      },
    );
    // Also bounds an answer's body: the connection is closed at the deadline whatever it still sends.
    const timer = setTimeout(() => {
      done({ kind: 'timeout' });
      req.destroy();
    }, post.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      done(err instanceof RefusedAddress ? { kind: 'refused', reason: err.message } : { kind: 'failed', reason: err.message || err.code || 'the connection failed' });
    });
    req.end(post.body);
  });
}
