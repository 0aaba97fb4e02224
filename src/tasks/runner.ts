import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { FlexiError } from '../errors';
import type { Logger } from '../log';
import type { Store } from '../store/store';

/** The one lease of a store's task runner (SPEC §10.4). */
export const TASK_LEASE = 'tasks';

/**
 * The date actions (SPEC §10.3) as the runner drives them: everything due on or before `date`
 * (YYYY-MM-DD, server local time) that has not fired yet.
 */
export interface DateActionsJob {
  runDue(date: string): Promise<void>;
  /** What runDue(date) would do, as lines for `flexi-admin tasks plan`; changes nothing. */
  plan(date: string): Promise<string[]>;
}

/** What a round of deliveries left to do: the earliest time a waiting retry is due, if any. */
export interface DeliveryRound {
  nextRetryAt?: number;
}

/** Webhook deliveries (SPEC §10.2) as the runner drives them. */
export interface DeliveryJob {
  /**
   * Delivers what is due now: for each subscription, its waiting events in order, one delivery at
   * a time, until none is waiting or a retry must wait. Stops early (leaving the rest for later)
   * when `signal` aborts: the runner is stopping or lost its lease. A delivery in flight is finished
   * or given up, never left half-recorded.
   */
  deliverDue(now: number, signal: AbortSignal): Promise<DeliveryRound>;
  /** The highest seq that retention may delete: every active or suspended subscription has had the events up to it. */
  retainableUpTo(): Promise<number>;
}

export interface RunnerOptions {
  store: Store;
  logger: Logger;
  leaseMs: number;
  /** HH:MM, server local time. */
  taskTime: string;
  eventRetentionMs: number;
  dates?: DateActionsJob;
  deliveries?: DeliveryJob;
  /** How often an idle runner looks for new events committed by other processes (default 1 s). */
  pollMs?: number;
  /** Told when a round of date actions or deliveries ends, for the metrics. */
  onRun?: (what: 'dates' | 'deliveries' | 'retention', outcome: 'ok' | 'error') => void;
}

/** Today's date in the server's time zone, YYYY-MM-DD. */
export function localDate(at: Date = new Date()): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}`;
}

/** The next moment after `from` whose local time of day is `hhmm`. */
export function nextTimeOfDay(hhmm: string, from: Date): Date {
  const [h, m] = hhmm.split(':').map(Number);
  const next = new Date(from.getFullYear(), from.getMonth(), from.getDate(), h, m, 0, 0);
  if (next.getTime() <= from.getTime()) next.setDate(next.getDate() + 1);
  return next;
}

const RETENTION_EVERY_MS = 3_600_000;
/** The shortest time between two rounds of deliveries that commits woke. */
const WAKE_GAP_MS = 20;

/**
 * The task runner (SPEC §10.4): one per store at a time, by a lease in the store. The holder renews
 * it every third of --task-lease for two thirds of it; another runner waits, trying every third,
 * and so takes over within --task-lease when the first stops (it gives the lease up at once) or
 * dies: its lease runs out at most two thirds after its last renewal, and the waiting runner tries
 * again at most a third after that.
 * While it holds the lease it runs the date actions when it gets the lease and then daily at
 * --task-time, deliveries continuously (woken by this process's commits, else looking every
 * second), and retention hourly.
 */
export class TaskRunner {
  readonly holder = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  /** Aborts the work in progress: the runner stops, or lost its lease. */
  private abort = new AbortController();
  private held = false;
  private renewTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: RunnerOptions) {}

  /** Whether this runner holds the store's lease right now. */
  get holdsLease(): boolean {
    return this.held;
  }

  /** Starts the loop in the background. */
  start(): void {
    this.loop ??= this.run().catch((e: unknown) => {
      this.options.logger.error('task runner stopped by an error', { error: e instanceof Error ? e.message : String(e) });
    });
  }

  /** New events were committed in this process: deliver them now rather than at the next look. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** Stops after the delivery in flight (SPEC §10.4) and gives the lease up. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    this.wakeUp?.();
    await this.loop;
    await this.letGo();
  }

  /**
   * `flexi-admin tasks run-once`: takes the lease (waiting up to one lease length for a runner that
   * holds it), runs the date actions due on `date`, delivers what can be delivered now, gives the
   * lease up. False when the lease stayed another runner's.
   */
  async runOnce(date = localDate()): Promise<boolean> {
    const deadline = Date.now() + this.options.leaseMs + 1000;
    while (!(await this.take())) {
      if (Date.now() > deadline) return false;
      await sleep(Math.min(1000, this.options.leaseMs / 3));
    }
    this.keepRenewing();
    try {
      await this.runDates(date);
      await this.deliver();
      await this.retain();
    } finally {
      await this.letGo();
    }
    return true;
  }

  private async run(): Promise<void> {
    const { logger, leaseMs } = this.options;
    const pollMs = this.options.pollMs ?? 1000;
    let nextDates = 0;
    let nextRetention = 0;
    while (!this.stopping) {
      if (!this.held) {
        if (!(await this.take())) {
          await this.waitFor(Math.max(100, Math.floor(leaseMs / 3)));
          continue;
        }
        logger.info('task runner holds the lease', { holder: this.holder });
        this.keepRenewing();
        // The date actions run when the runner starts (takes over), then daily (SPEC §10.4).
        nextDates = Date.now();
      }
      const now = Date.now();
      if (now >= nextDates) {
        await this.runDates(localDate(new Date(now)));
        nextDates = nextTimeOfDay(this.options.taskTime, new Date(now)).getTime();
      }
      if (now >= nextRetention) {
        await this.retain();
        nextRetention = now + RETENTION_EVERY_MS;
      }
      this.woken = false;
      const roundStarted = Date.now();
      const round = await this.deliver();
      if (this.stopping || !this.held) continue;
      const until = Math.min(nextDates, nextRetention, round.nextRetryAt ?? Infinity, Date.now() + pollMs);
      if (!this.woken) await this.waitFor(until - Date.now());
      // Commits that woke it, during the round or while it waited, make the next round, but not
      // sooner than WAKE_GAP_MS after this one began: a stream of small batches is delivered in
      // rounds, not one round per batch.
      if (this.woken && !this.stopping) await sleep(roundStarted + WAKE_GAP_MS - Date.now());
    }
  }

  private async take(): Promise<boolean> {
    try {
      this.held = await this.options.store.acquireLease(TASK_LEASE, this.holder, Date.now(), Math.max(200, Math.floor((this.options.leaseMs * 2) / 3)));
    } catch (e) {
      this.options.logger.warn('task runner could not reach the store for its lease', { error: e instanceof Error ? e.message : String(e) });
      this.held = false;
    }
    if (this.held && this.abort.signal.aborted && !this.stopping) this.abort = new AbortController();
    return this.held;
  }

  /** Renews the lease every third of its length; a renewal that fails means another runner may take over, so the work stops. */
  private keepRenewing(): void {
    clearInterval(this.renewTimer);
    this.renewTimer = setInterval(() => {
      void this.take().then((held) => {
        if (held) return;
        this.options.logger.warn('task runner lost its lease; another runner may take over', { holder: this.holder });
        clearInterval(this.renewTimer);
        this.abort.abort();
        this.wakeUp?.();
      });
    }, Math.max(100, Math.floor(this.options.leaseMs / 3)));
    this.renewTimer.unref();
  }

  private async letGo(): Promise<void> {
    clearInterval(this.renewTimer);
    if (!this.held) return;
    this.held = false;
    try {
      await this.options.store.releaseLease(TASK_LEASE, this.holder);
    } catch {
      // The lease runs out by itself.
    }
  }

  private async runDates(date: string): Promise<void> {
    const { dates } = this.options;
    if (!dates || this.abort.signal.aborted) return;
    // Once a day and at each start or take-over: operators (and the tests) see that the round ended.
    const ran = await this.guarded('dates', async () => {
      await dates.runDue(date);
      return true;
    });
    if (ran) this.options.logger.info('date actions checked', { date, holder: this.holder });
  }

  private async deliver(): Promise<DeliveryRound> {
    const { deliveries } = this.options;
    if (!deliveries || this.abort.signal.aborted) return {};
    return (await this.guarded('deliveries', () => deliveries.deliverDue(Date.now(), this.abort.signal))) ?? {};
  }

  private async retain(): Promise<void> {
    if (this.abort.signal.aborted) return;
    await this.guarded('retention', async () => {
      const upTo = this.options.deliveries ? await this.options.deliveries.retainableUpTo() : Number.MAX_SAFE_INTEGER;
      const before = new Date(Date.now() - this.options.eventRetentionMs).toISOString();
      const through = await this.options.store.deleteEvents(before, upTo);
      if (through > 0) this.options.logger.info('deleted old events', { throughSeq: through, before });
    });
  }

  /** Runs one round; an error is logged and counted, and the runner goes on (the next round tries again). */
  private async guarded<T>(what: 'dates' | 'deliveries' | 'retention', work: () => Promise<T>): Promise<T | undefined> {
    try {
      const result = await work();
      this.options.onRun?.(what, 'ok');
      return result;
    } catch (e) {
      this.options.onRun?.(what, 'error');
      const error = e instanceof Error ? e.message : String(e);
      // The store gone for a while (503: a restart, a lost connection) is expected and heals by
      // itself: a warning. Anything else is a fault an operator must look at.
      if (e instanceof FlexiError && e.status === 503) this.options.logger.warn(`task runner: ${what} failed, retried next round`, { error });
      else this.options.logger.error(`task runner: ${what} failed`, { error });
      return undefined;
    }
  }

  private waitFor(ms: number): Promise<void> {
    if (this.stopping || ms <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.min(ms, 2 ** 31 - 1));
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = done;
    });
  }
}

const sleep = (ms: number): Promise<void> => (ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve());
