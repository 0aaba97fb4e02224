import { lookup } from 'node:dns/promises';
import { isAddressLiteral, isLoopbackName } from '../domain/addresses';
import { isAllowedHost, urlHost, type HostResolution } from '../domain/webhooks';
import type { BatchDocument } from './operations';

/** The addresses a host name resolves to, as a connection would find them. */
export type HostLookup = (host: string) => Promise<string[]>;

/** getaddrinfo, as node:https connects: the hosts file and the system's resolver, every address. */
export const systemLookup: HostLookup = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

const LOOKUP_TIMEOUT_MS = 5000;
/** getaddrinfo runs on libuv's small thread pool, which password hashing shares: a few at a time. */
const LOOKUPS_AT_ONCE = 4;

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms)));
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Resolves, before the batch takes the store's lock, every host name of a `<subscription>` URL that
 * the planner will have to judge (SPEC §10.2: a host that resolves to a refused address is
 * FAILED): not addresses, not `localhost` names, not the allowed hosts. The planner stays pure and
 * the lock is never held while DNS answers.
 */
export function resolveWebhookHosts(
  doc: BatchDocument,
  allowHosts: readonly string[],
  lookupHost: HostLookup = systemLookup,
  timeoutMs = LOOKUP_TIMEOUT_MS,
): Promise<Map<string, HostResolution>> {
  const hosts = new Set<string>();
  for (const op of doc.operations) {
    if (op.kind !== 'subscription' || op.invalid || op.action === 'delete' || !op.fields.url) continue;
    const host = urlHost(op.fields.url);
    if (!isAddressLiteral(host) && !isLoopbackName(host) && !isAllowedHost(host, allowHosts)) hosts.add(host);
  }
  // Most batches name no host to look up: they go on without the lookups' machinery.
  return hosts.size === 0 ? Promise.resolve(new Map()) : resolveAll([...hosts], lookupHost, timeoutMs);
}

async function resolveAll(queue: string[], lookupHost: HostLookup, timeoutMs: number): Promise<Map<string, HostResolution>> {
  const resolved = new Map<string, HostResolution>();
  const worker = async (): Promise<void> => {
    for (let host = queue.shift(); host !== undefined; host = queue.shift()) {
      try {
        resolved.set(host, { addresses: await withTimeout(lookupHost(host), timeoutMs) });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        resolved.set(host, { error: code ?? (err instanceof Error ? err.message : String(err)) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(LOOKUPS_AT_ONCE, queue.length) }, worker));
  return resolved;
}
