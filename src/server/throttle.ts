import { FlexiError } from '../errors';

export interface ThrottleOptions {
  /** Failures allowed from one address within the window before it must wait. */
  maxFailures: number;
  /** Failed password checks allowed for one username, from all addresses together, within the window. */
  maxFailuresPerUser: number;
  windowMs: number;
  /** Upper bound on addresses (and on usernames) remembered, so a spray of sources cannot grow memory. */
  maxKeys?: number;
  now?: () => number;
}

/** A check in progress, counted against its keys until it is settled, exactly once. */
export interface Attempt {
  /** The check succeeded, or was never made (the store was down): nothing is counted. */
  release(): void;
  /** The credential was wrong: one failure is counted. */
  fail(): void;
}

interface KeyState {
  /** When the failures in the window happened, oldest first. */
  failures: number[];
  /** Checks of this key in progress. */
  pending: number;
  /** Attempts waiting for a pending check of this key to settle. */
  waiting: Array<() => void>;
}

/** Failures and checks in progress per key, in a sliding window. */
class FailureWindow {
  private readonly byKey = new Map<string, KeyState>();

  constructor(
    readonly max: number,
    readonly whose: string,
    private readonly windowMs: number,
    private readonly maxKeys: number,
    readonly now: () => number,
  ) {}

  /** The key's state with failures outside the window dropped; undefined when nothing is left of it. */
  find(key: string): KeyState | undefined {
    const state = this.byKey.get(key);
    if (!state) return undefined;
    const since = this.now() - this.windowMs;
    if (state.failures.length > 0 && state.failures[0] <= since) state.failures = state.failures.filter((t) => t > since);
    return this.forgetIfEmpty(key, state);
  }

  get(key: string): KeyState {
    const found = this.find(key);
    if (found) return found;
    if (this.byKey.size >= this.maxKeys) {
      // The oldest key that nothing is waiting on; keys with checks in progress stay.
      for (const [oldest, state] of this.byKey) {
        if (state.pending === 0 && state.waiting.length === 0) {
          this.byKey.delete(oldest);
          break;
        }
      }
    }
    const state: KeyState = { failures: [], pending: 0, waiting: [] };
    this.byKey.set(key, state);
    return state;
  }

  forgetIfEmpty(key: string, state: KeyState): KeyState | undefined {
    if (state.failures.length > 0 || state.pending > 0 || state.waiting.length > 0) return state;
    this.byKey.delete(key);
    return undefined;
  }

  /** 429 when the key has used up its failures. */
  refusal(key: string): FlexiError | undefined {
    const failures = this.find(key)?.failures ?? [];
    if (failures.length < this.max) return undefined;
    const retryAfter = Math.max(1, Math.ceil((failures[0] + this.windowMs - this.now()) / 1000));
    return new FlexiError('too-many-requests', `Too many failed authentication attempts ${this.whose}; retry in ${retryAfter} seconds.`, {
      'Retry-After': String(retryAfter),
    });
  }

  addFailure(key: string): void {
    this.get(key).failures.push(this.now());
  }
}

/**
 * Failed authentications per client address, and failed password checks per username, in a
 * sliding window. A key over its limit gets 429 with Retry-After until its oldest failure leaves
 * the window; other keys are not affected.
 *
 * A check in progress counts as a possible failure: a key runs at most as many checks at once as
 * it has failures left, and further attempts wait for one of them to settle (then go ahead, or
 * get 429 if it failed). So parallel guesses cannot all pass the limit before the first of them
 * has failed, while parallel requests with a valid credential are only queued, never refused.
 * A success never wipes earlier failures: a valid credential must not reset the count of
 * guesses made from the same address.
 */
export class AuthThrottle {
  private readonly byAddress: FailureWindow;
  private readonly byUser: FailureWindow;

  constructor(options: ThrottleOptions) {
    const now = options.now ?? Date.now;
    const maxKeys = options.maxKeys ?? 100_000;
    this.byAddress = new FailureWindow(options.maxFailures, 'from this address', options.windowMs, maxKeys, now);
    this.byUser = new FailureWindow(options.maxFailuresPerUser, 'for this username', options.windowMs, maxKeys, now);
  }

  /** Throws 429 when the address has used up its failures; counts nothing. */
  assertAllowed(address: string): void {
    const refusal = this.byAddress.refusal(address);
    if (refusal) throw refusal;
  }

  /** A failure that was not a guess checked against a secret (an unknown certificate): counted at once, or 429. */
  recordFailure(address: string): void {
    this.assertAllowed(address);
    this.byAddress.addFailure(address);
  }

  /**
   * Starts a check against the address and, for a password, the username (`user`, already in
   * its canonical form). Rejects with 429 when either has used up its failures; waits while
   * either has as many checks in progress as failures left. The attempt is counted synchronously
   * when it is granted, before the caller awaits anything else.
   */
  begin(address: string, user?: string): Promise<Attempt> {
    const lanes: Array<[FailureWindow, string]> = [[this.byAddress, address]];
    if (user !== undefined) lanes.push([this.byUser, user]);
    return new Promise<Attempt>((resolve, reject) => {
      const tryNow = (): void => {
        for (const [window, key] of lanes) {
          const refusal = window.refusal(key);
          if (refusal) return reject(refusal);
        }
        for (const [window, key] of lanes) {
          const state = window.find(key);
          if (state && state.failures.length + state.pending >= window.max) {
            state.waiting.push(tryNow);
            return;
          }
        }
        resolve(this.start(lanes));
      };
      tryNow();
    });
  }

  private start(lanes: Array<[FailureWindow, string]>): Attempt {
    for (const [window, key] of lanes) window.get(key).pending++;
    let settled = false;
    const settle = (failed: boolean): void => {
      if (settled) return;
      settled = true;
      for (const [window, key] of lanes) {
        const state = window.get(key);
        if (failed) state.failures.push(window.now());
        state.pending--;
        const waiting = state.waiting.splice(0);
        window.forgetIfEmpty(key, state);
        for (const next of waiting) next();
      }
    };
    return { release: () => settle(false), fail: () => settle(true) };
  }
}
