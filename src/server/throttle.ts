import { FlexiError } from '../errors';

export interface ThrottleOptions {
  /** Failures allowed from one address within the window before it must wait. */
  maxFailures: number;
  windowMs: number;
  /** Upper bound on addresses remembered, so a spray of sources cannot grow memory. */
  maxAddresses?: number;
  now?: () => number;
}

interface Record {
  failures: number[];
}

/**
 * Failed authentications per client address in a sliding window. An address over the limit
 * gets 429 with Retry-After until its oldest failure leaves the window; other addresses are
 * not affected. A success does not wipe the record: a valid certificate must not reset the
 * count of password guesses made from the same address.
 */
export class AuthThrottle {
  private readonly byAddress = new Map<string, Record>();
  private readonly now: () => number;
  private readonly maxAddresses: number;

  constructor(private readonly options: ThrottleOptions) {
    this.now = options.now ?? Date.now;
    this.maxAddresses = options.maxAddresses ?? 100_000;
  }

  private recent(address: string): number[] {
    const record = this.byAddress.get(address);
    if (!record) return [];
    const since = this.now() - this.options.windowMs;
    record.failures = record.failures.filter((t) => t > since);
    if (record.failures.length === 0) this.byAddress.delete(address);
    return record.failures;
  }

  /** Throws 429 when the address has used up its failures. */
  assertAllowed(address: string): void {
    const failures = this.recent(address);
    if (failures.length < this.options.maxFailures) return;
    const retryAfter = Math.max(1, Math.ceil((failures[0] + this.options.windowMs - this.now()) / 1000));
    throw new FlexiError('too-many-requests', `Too many failed authentication attempts from this address; retry in ${retryAfter} seconds.`, {
      'Retry-After': String(retryAfter),
    });
  }

  recordFailure(address: string): void {
    const failures = this.recent(address);
    if (!this.byAddress.has(address)) {
      if (this.byAddress.size >= this.maxAddresses) {
        const oldest = this.byAddress.keys().next().value;
        if (oldest !== undefined) this.byAddress.delete(oldest);
      }
      this.byAddress.set(address, { failures });
    }
    failures.push(this.now());
  }
}
