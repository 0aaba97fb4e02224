import { checkLoginPassword, hashPassword, isWeakerThanPolicy, MAX_PBKDF2_ITERATIONS, pbkdf2IterationsOf, policyIterations, type HashPolicy, type LoginCheck } from '../domain/passwords';
import { FlexiError } from '../errors';
import type { Logger } from '../log';
import type { Store } from '../store/store';

export interface PasswordChecksOptions {
  store: Store;
  policy: HashPolicy;
  /** Checks hashing at the same time. */
  concurrency: number;
  /** Checks that may wait for a free slot; one more is refused with 503. */
  queue: number;
  logger: Logger;
  /** How old the store's costliest form may get before a login looks it up again. */
  refreshMs?: number;
  now?: () => number;
}

export interface LoginCheckResult extends LoginCheck {
  /** The policy's form of the password, when it matched a weaker stored form that should be replaced. */
  upgrade?: string;
}

/**
 * The password checks of logins: unauthenticated work, so it is bounded. At most `concurrency`
 * run at once (libuv's thread pool has 4 threads by default, shared with batches and file I/O),
 * `queue` more wait, and the rest get 503 with Retry-After before any hashing.
 *
 * Every check runs the same PBKDF2 work — the costliest form in the store or of the server's
 * policy — whether the name exists or not and however its password is stored, so neither the
 * answer time nor the load tells which names exist (checkLoginPassword).
 */
export class PasswordChecks {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  private costliestStored = 0;
  private loadedAt = Number.NEGATIVE_INFINITY;
  private notedWhileLoading: number | undefined;
  private refreshing: Promise<void> | undefined;
  private readonly refreshMs: number;
  private readonly now: () => number;

  constructor(private readonly options: PasswordChecksOptions) {
    this.refreshMs = options.refreshMs ?? 60_000;
    this.now = options.now ?? Date.now;
  }

  /** Reads the costliest stored form; at start, before the first login, and then when stale. */
  async load(): Promise<void> {
    this.loadedAt = this.now();
    this.notedWhileLoading = 0;
    try {
      const stored = await this.options.store.costliestPbkdf2Iterations();
      // A batch committed while the query ran may have written a form the query did not see.
      this.costliestStored = Math.max(stored, this.notedWhileLoading);
    } finally {
      this.notedWhileLoading = undefined;
    }
  }

  /** Stored forms this process has just written (a committed batch): the decoy work follows them at once. */
  note(storedHashes: Iterable<string | null>): void {
    let most = 0;
    for (const stored of storedHashes) most = Math.max(most, pbkdf2IterationsOf(stored));
    if (this.notedWhileLoading !== undefined) this.notedWhileLoading = Math.max(this.notedWhileLoading, most);
    this.costliestStored = Math.max(this.costliestStored, most);
  }

  /** PBKDF2 iterations every login check runs. */
  work(): number {
    return Math.min(MAX_PBKDF2_ITERATIONS, Math.max(this.costliestStored, policyIterations(this.options.policy)));
  }

  /**
   * Checks a login's password against `stored` (null: no such user, or no password) with the
   * same work for everyone; with `upgrade`, a match against a form weaker than the policy also
   * returns the policy's form, hashed in the same slot.
   */
  async check(stored: string | null, password: string, options: { upgrade: boolean }): Promise<LoginCheckResult> {
    this.refreshIfStale();
    return this.run(async () => {
      const result: LoginCheckResult = await checkLoginPassword(stored, password, this.work(), this.options.policy);
      if (result.matches && options.upgrade && stored !== null && isWeakerThanPolicy(stored, this.options.policy)) {
        result.upgrade = await hashPassword(password, this.options.policy);
      }
      return result;
    });
  }

  private async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active < this.options.concurrency) {
      this.active++;
    } else {
      if (this.waiting.length >= this.options.queue) {
        throw new FlexiError('server-busy', 'Too many logins are being checked right now; nothing was checked. Retry shortly.', { 'Retry-After': '1' });
      }
      // A finishing check hands its slot over, so `active` stays counted for this one.
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }

  /** Another process sharing the store may import costlier forms; they are picked up within `refreshMs`. */
  private refreshIfStale(): void {
    if (this.refreshing || this.now() - this.loadedAt < this.refreshMs) return;
    this.refreshing = this.load()
      .catch((err: unknown) => this.options.logger.warn('could not read the costliest stored password form', { error: (err as Error).message }))
      .finally(() => (this.refreshing = undefined));
  }
}
