import { createHash } from 'node:crypto';
import type { Principal } from '../domain/principals';
import { describePrincipal, eventCredential } from '../domain/principals';
import { hashPassword, verifyPassword, verifyPasswordSync, type HashPolicy } from '../domain/passwords';
import { userKey, type UserRecord } from '../domain/users';
import { FlexiError, isFlexiError } from '../errors';
import type { Store } from '../store/store';
import type { BatchDocument } from './operations';
import { parseBatch } from './parse';
import { planBatch, snapshotRequest, type PlannedUser, type Snapshot } from './plan';
import { countByEntity, countResults, renderResult, type Stats } from '../xml/result';
import { resolveWebhookHosts, type HostLookup } from './webhook-hosts';

export interface ExecutorOptions {
  maxOperations: number;
  hashPolicy: HashPolicy;
  /** Told the password hashes of every user a batch wrote, once they are committed. */
  onPasswordsWritten?: (hashes: Array<string | null>) => void;
  /** Hosts a webhook URL may name whatever their addresses, and with http:// (--webhook-allow-hosts). */
  webhookAllowHosts?: readonly string[];
  /** How webhook host names are resolved before planning (the system's resolver by default). */
  lookupHost?: HostLookup;
}

export interface BatchOutcome {
  batchId: string;
  xml: string;
  stats: Stats;
  /** Operations by `${entity type}\u0000${status}`. */
  byEntity: Map<string, number>;
  dryRun: boolean;
  /** How many events the batch committed (SPEC §10.1). */
  events: number;
}

const pairKey = (stored: string, plain: string): string => `${stored}\u0000${plain}`;

/**
 * Verifies, off the event loop, every plain-text password of the batch against every stored form
 * the planner may compare it with: the user's stored hash and any pre-hashed password the batch
 * gives that user. The planner then never has to run a (possibly slow) PBKDF2 synchronously.
 */
async function verifyAgainstSnapshot(doc: BatchDocument, snapshot: Snapshot): Promise<Map<string, boolean>> {
  // Most batches carry pre-hashed passwords or none: then there is nothing to verify.
  if (!doc.operations.some((op) => op.kind === 'user' && op.fields.password?.kind === 'plain')) return new Map();
  const storedForms = new Map<string, Set<string>>();
  const addForm = (key: string, stored: string): void => {
    const forms = storedForms.get(key) ?? new Set<string>();
    forms.add(stored);
    storedForms.set(key, forms);
  };
  for (const u of snapshot.users) if (u.passwordHash) addForm(u.key, u.passwordHash);
  for (const op of doc.operations) {
    if (op.kind === 'user' && op.username && !op.invalid && op.fields.password?.kind === 'hashed') addForm(userKey(op.username), op.fields.password.stored);
  }
  const checks = new Map<string, Promise<boolean>>();
  for (const op of doc.operations) {
    if (op.kind !== 'user' || !op.username || op.invalid || op.fields.password?.kind !== 'plain') continue;
    const plain = op.fields.password.value;
    for (const stored of storedForms.get(userKey(op.username)) ?? []) {
      if (!checks.has(pairKey(stored, plain))) checks.set(pairKey(stored, plain), verifyPassword(stored, plain));
    }
  }
  const results = new Map<string, boolean>();
  for (const [key, check] of checks) results.set(key, await check);
  return results;
}

/** Each new plain-text password hashed in the algorithm its user's group asks for (SPEC §7.3), else the server's. */
async function hashNewPasswords(users: PlannedUser[], policy: HashPolicy): Promise<UserRecord[]> {
  // Most users of a batch bring no plain-text password (the planner leaves newPassword out then):
  // they are written as they are, not copied and awaited one by one.
  if (users.every((u) => u.newPassword === undefined)) return users;
  return Promise.all(
    users.map(async ({ newPassword, hashAlgorithm, ...user }) =>
      newPassword === undefined ? user : { ...user, passwordHash: await hashPassword(newPassword, { ...policy, algorithm: hashAlgorithm ?? policy.algorithm }) },
    ),
  );
}

/** 409 for a batch (same id and body) that is queued or running already, in this process or another. */
function alreadyInFlight(batchId: string): FlexiError {
  return new FlexiError('conflict', `The batch ${batchId} with this body is being executed right now; retry shortly for its result.`, {
    'Retry-After': '1',
  });
}

/**
 * parse → lock → snapshot → plan → write + journal in one commit → answer.
 * The same batch (id and body) arriving while it is queued or running is refused with 409,
 * so a client that timed out and retries does not pile up copies; a different body with
 * the same id simply waits its turn.
 */
export class BatchExecutor {
  private readonly inFlight = new Set<string>();
  /** Executions accepted and not yet settled (queued behind another batch or running). */
  private readonly running = new Set<Promise<unknown>>();
  private accepting = true;

  constructor(
    private readonly store: Store,
    private readonly options: ExecutorOptions,
  ) {}

  /**
   * For a shutdown: batches that arrive from now on are refused (503, nothing applied), and the
   * returned promise resolves once every batch accepted before has been committed or rolled back.
   */
  async stopAccepting(): Promise<void> {
    this.accepting = false;
    await Promise.allSettled([...this.running]);
  }

  execute(body: string, principal: Principal, receivedAt = new Date()): Promise<BatchOutcome> {
    if (!this.accepting) {
      return Promise.reject(
        new FlexiError('store-unavailable', 'The server is shutting down; the batch was not applied. Send it again once the server is back.', {
          'Retry-After': '1',
        }),
      );
    }
    const run = this.run(body, principal, receivedAt);
    this.running.add(run);
    const forget = (): void => void this.running.delete(run);
    run.then(forget, forget);
    return run;
  }

  private async run(body: string, principal: Principal, receivedAt: Date): Promise<BatchOutcome> {
    const doc = parseBatch(body, { maxOperations: this.options.maxOperations });
    const bodySha256 = createHash('sha256').update(body, 'utf8').digest('hex');
    const flight = `${doc.id}\u0000${bodySha256}`;
    if (this.inFlight.has(flight)) throw alreadyInFlight(doc.id);
    this.inFlight.add(flight);
    try {
      const allowHosts = this.options.webhookAllowHosts ?? [];
      const resolved = await resolveWebhookHosts(doc, allowHosts, this.options.lookupHost);
      const { written, ...outcome } = await this.store.inBatch(async (tx) => {
        const snapshot = await tx.loadSnapshot(snapshotRequest(doc, principal), principal.scope);
        const verified = await verifyAgainstSnapshot(doc, snapshot);
        const plan = planBatch(doc, snapshot, {
          principal,
          passwordMatches: (stored, plain) => verified.get(pairKey(stored, plain)) ?? verifyPasswordSync(stored, plain),
          webhooks: { allowHosts, resolved },
        });
        const stats = countResults(plan.results);
        const xml = renderResult({ id: doc.id, dryRun: doc.dryRun }, plan.results, stats);
        let written: Array<string | null> = [];
        let events = 0;
        if (!doc.dryRun) {
          const users = await hashNewPasswords(plan.changes.users, this.options.hashPolicy);
          written = users.map((u) => u.passwordHash);
          await tx.apply({ ...plan.changes, users });
          events = (await tx.recordEvents({ batchId: doc.id, actor: { credential: eventCredential(principal), user: principal.actingUser ?? null }, events: plan.events })).length;
          await tx.journal({
            batchId: doc.id,
            credential: `${principal.kind}:${principal.name}`,
            principal: describePrincipal(principal),
            impersonated: principal.kind === 'session' ? null : (principal.actingUser ?? null),
            actingUser: principal.actingUser === undefined ? null : userKey(principal.actingUser),
            scope: principal.scope,
            receivedAt: receivedAt.toISOString(),
            finishedAt: new Date().toISOString(),
            bodySha256,
            resultXml: xml,
          });
        }
        return { batchId: doc.id, xml, stats, byEntity: countByEntity(plan.results), dryRun: doc.dryRun, written, events };
      }, { claim: flight });
      this.options.onPasswordsWritten?.(written);
      return outcome;
    } catch (err) {
      // A store shared by several processes refuses the claim while another process has this batch.
      if (isFlexiError(err) && err.code === 'conflict') throw alreadyInFlight(doc.id);
      throw err;
    } finally {
      this.inFlight.delete(flight);
    }
  }
}
