/**
 * The properties of test/unit/properties.test.ts once more through the real use case: BatchExecutor
 * on a real SQLite file (SqliteStore.open), so that the snapshot loading, password verification and
 * hashing, the change set writes and the journal are part of what is checked:
 *
 * - every answer and every stored state are the reference model's (test/support/batch-model.ts), for
 *   random sequences of generated batches sent with full rights or as stored users, atomic or not;
 * - a dry run answers exactly what the real run then answers (but for the root's dry-run="true"),
 *   and leaves every table and the journal as they were;
 * - re-sending a batch leaves the store exactly as the first send did, under the rule of
 *   test/integration/idempotency.test.ts: when SPEC §4 itself makes the batch idempotent (the model
 *   run twice changes nothing the second time — a forward reference does not), every row is
 *   unchanged but the timestamps of a company the batch deletes and creates again; and the second
 *   answer is SKIPPED/FAILED but for entries another operation of the batch writes too.
 *
 * Fixed seed (FC_SEED overrides it, FC_RUNS multiplies the run counts); fast-check prints seed and
 * path of a counterexample.
 */
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { BatchExecutor } from '../../src/batch/execute';
import { parseBatch } from '../../src/batch/parse';
import type { AccessRecord } from '../../src/domain/access';
import type { CompanyRecord } from '../../src/domain/companies';
import { PERMISSION_NAMES } from '../../src/domain/permissions';
import type { HashPolicy } from '../../src/domain/passwords';
import type { Principal } from '../../src/domain/principals';
import type { UserRecord } from '../../src/domain/users';
import { openStore } from '../../src/store/open-store';
import { ACCESS, COMPANIES, USERS } from '../../src/store/schema';
import type { Store } from '../../src/store/store';
import type { JournalRow } from '../support/sqlite-dump';
import { dropTestDb, dumpWithJournal, newTestDb, withoutTimestampsOf } from '../support/stores';
import { generateBatch } from '../support/batch-generator';
import { contested, emptyState, idempotentBySpec, recordsAsModel, runModel, stateData, type ModelResult, type ModelState } from '../support/batch-model';
import { entries } from '../support/server';

const SEED = Number(process.env.FC_SEED ?? 20_240_604);
/** FC_RUNS multiplies every run count, for a longer hunt than the default suite affords. */
const runs = (numRuns: number): fc.Parameters<unknown> => ({
  seed: SEED,
  numRuns: Math.ceil(numRuns * Number(process.env.FC_RUNS ?? 1)),
  endOnFailure: true,
  // FC_PATH (with FC_SEED) replays the one counterexample a failure printed.
  ...(process.env.FC_PATH ? { path: process.env.FC_PATH } : {}),
});

type Dump = Record<string, unknown[]>;
type Row = Record<string, unknown>;

const SHA256: HashPolicy = { algorithm: 'sha256', pbkdf2Iterations: 1000 };
const PBKDF2: HashPolicy = { algorithm: 'pbkdf2', pbkdf2Iterations: 1000 };

const ACTORS = [undefined, 'boss', 'eva', 'Anna.Mlada'] as const;
type Actor = (typeof ACTORS)[number];

const principalOf = (actor: Actor): Principal =>
  actor === undefined ? { kind: 'certificate', name: 'dev-client', scope: 'root' } : { kind: 'certificate', name: 'dev-client', scope: 'root', actingUser: actor };

/** The entity rows of a dump as the records the planner works with: the store's own row mapping (src/store/schema.ts). */
function recordsOf(dump: Dump): { users: UserRecord[]; companies: CompanyRecord[]; access: AccessRecord[] } {
  return {
    users: (dump.users as Row[]).map(USERS.fromRow),
    companies: (dump.companies as Row[]).map(COMPANIES.fromRow),
    access: (dump.access as Row[]).map(ACCESS.fromRow),
  };
}

/** SPEC §2: acting as an unknown, deleted or blocked user is refused (403) before the executor runs. */
function mayAct(dump: Dump, actor: Actor): boolean {
  if (actor === undefined) return true;
  const u = (dump.users as Row[]).find((r) => r.key === actor.toLowerCase());
  return u !== undefined && u.deleted === 0 && u.blocked === 0;
}

/** Deep equality, checked cheaply; when it fails, jest's diff and the batches that led there. */
function same(actual: unknown, expected: unknown, where: string): void {
  if (isDeepStrictEqual(actual, expected)) return;
  try {
    expect(actual).toEqual(expected);
  } catch (err) {
    (err as Error).message += `\n\nafter these batches:\n${where}`;
    throw err;
  }
  expect(actual).toStrictEqual(expected);
}

const results = (xml: string): ModelResult[] => entries(xml).map((e) => ({ id: e.id, status: e.status as ModelResult['status'] }));

interface World {
  dir: string;
  path: string;
  store: Store;
  executor: BatchExecutor;
  model: ModelState;
  context: string[];
  /** The journal after the last send. */
  journal: JournalRow[];
}

async function openWorld(policy: HashPolicy): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'flexi-props-'));
  const path = newTestDb(dir);
  const store = await openStore(path);
  return { dir, path, store, executor: new BatchExecutor(store, { maxOperations: 1000, hashPolicy: policy }), model: emptyState(), context: [], journal: [] };
}

async function closeWorld(world: World): Promise<void> {
  await world.store.close();
  dropTestDb(world.path);
  rmSync(world.dir, { recursive: true, force: true });
}

/** One send through the executor, held to the model: answer, stored state and journal. */
async function send(world: World, body: string, actor: Actor): Promise<{ xml: string; dump: Dump }> {
  const doc = parseBatch(body, { maxOperations: 1000 });
  const expected = runModel(doc, world.model, actor);
  const journal = world.journal.length;
  const { xml } = await world.executor.execute(body, principalOf(actor));
  const { rows: dump, journal: rows } = dumpWithJournal(world.path);
  world.journal = rows;
  const where = `${world.context.join('\n')}\n--- this send, as ${actor ?? 'root'}:\n${body}`;
  same(results(xml), expected.results, where);
  world.model = expected.state;
  same(recordsAsModel(recordsOf(dump), world.model), stateData(world.model), where);
  if (doc.dryRun) {
    same(rows.length, journal, where);
  } else {
    same(rows.length, journal + 1, where);
    same(rows.at(-1), { ...rows.at(-1), batch_id: doc.id, impersonated: actor ?? null, acting_user_key: actor?.toLowerCase() ?? null, result_xml: xml }, where);
  }
  world.context.push(`--- sent as ${actor ?? 'root'}:\n${body}`);
  return { xml, dump };
}

const permissionsXml = fc
  .tuple(...PERMISSION_NAMES.map(() => fc.boolean()))
  .map((flags) => `<permissions>${PERMISSION_NAMES.map((p, i) => `<${p}>${flags[i]}</${p}>`).join('')}</permissions>`);

/** The starting store, made by a batch with full rights: the actors with random permissions, and companies boss may run. */
const setupArb = fc
  .record({ boss: permissionsXml, eva: permissionsXml, anna: permissionsXml, bossRuns: fc.boolean(), withCompanies: fc.boolean() })
  .map(
    ({ boss, eva, anna, bossRuns, withCompanies }) => `<flexibee-batch id="setup">
      <user><username>boss</username><password>boss-pw</password>${boss}</user>
      <user><username>eva</username>${eva}</user>
      <user><username>anna.mlada</username><password>pw-one</password>${anna}</user>
      ${withCompanies ? `<company><id>moje_firma_s_r_o_</id><name>Moje Firma s.r.o.</name><adminUser>${bossRuns ? 'boss' : 'anna.mlada'}</adminUser></company><access user="eva" role="ADMIN">moje_firma_s_r_o_</access>` : ''}
    </flexibee-batch>`,
  );

const stepArb = fc.record({
  seed: fc.integer({ min: 1, max: 0x7fffffff }),
  actor: fc.constantFrom<Actor>(...ACTORS),
  atomic: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, fc.boolean()),
});

const worldArb = fc.record({ setup: setupArb, pbkdf2: fc.boolean(), steps: fc.array(stepArb, { minLength: 1, maxLength: 3 }) });

describe('BatchExecutor on the store against the reference model (SPEC §4, §5, §6)', () => {
  test('when random sequences of batches are sent as root or as stored users, atomic or not, then every answer, stored state and journal entry is the model\'s', async () => {
    await fc.assert(
      fc.asyncProperty(worldArb, async ({ setup, pbkdf2, steps }) => {
        const world = await openWorld(pbkdf2 ? PBKDF2 : SHA256);
        try {
          let { dump } = await send(world, setup, undefined);
          for (const step of steps) {
            if (!mayAct(dump, step.actor)) continue;
            ({ dump } = await send(world, generateBatch(step.seed, { atomic: step.atomic }), step.actor));
          }
        } finally {
          await closeWorld(world);
        }
      }),
      runs(60),
    );
  });

  test('when a batch is sent as a dry run and then for real, then both answers are the same document (but the dry-run attribute) and the dry run changes nothing, journal included', async () => {
    await fc.assert(
      fc.asyncProperty(worldArb, async ({ setup, pbkdf2, steps }) => {
        const world = await openWorld(pbkdf2 ? PBKDF2 : SHA256);
        try {
          let { dump } = await send(world, setup, undefined);
          for (const step of steps) {
            if (!mayAct(dump, step.actor)) continue;
            const journal = world.journal;
            const dry = await send(world, generateBatch(step.seed, { atomic: step.atomic, dryRun: true }), step.actor);
            const where = world.context.join('\n');
            same(dry.dump, dump, where);
            same(world.journal, journal, where);
            const real = await send(world, generateBatch(step.seed, { atomic: step.atomic }), step.actor);
            same(dry.xml, real.xml.replace(/^(<flexibee-batch-result id="[^"]*")>/m, '$1 dry-run="true">'), where);
            dump = real.dump;
          }
        } finally {
          await closeWorld(world);
        }
      }),
      runs(40),
    );
  });

  test('when a batch SPEC §4 makes idempotent is sent twice, then every row is as after the first send and the second answer adds nothing the batch does not redo itself', async () => {
    let held = 0;
    let excused = 0;
    await fc.assert(
      fc.asyncProperty(worldArb, async ({ setup, pbkdf2, steps }) => {
        const world = await openWorld(pbkdf2 ? PBKDF2 : SHA256);
        try {
          let { dump } = await send(world, setup, undefined);
          for (const step of steps) {
            if (!mayAct(dump, step.actor)) continue;
            const body = generateBatch(step.seed, { atomic: step.atomic });
            const doc = parseBatch(body, { maxOperations: 1000 });
            const byModel = idempotentBySpec(doc, world.model, step.actor);
            const first = await send(world, body, step.actor);
            dump = first.dump;
            // The first send may block or delete the actor: the re-send is then refused as a whole (403).
            if (!mayAct(dump, step.actor)) continue;
            const second = await send(world, body, step.actor);
            dump = second.dump;
            if (!byModel) {
              excused++;
              continue;
            }
            held++;
            const where = world.context.join('\n');
            const recreated = new Set(
              entries(second.xml)
                .filter((e, i) => e.status === 'DELETED' && doc.operations[i].kind === 'company')
                .map((e) => e.id)
                .filter((id) => (second.dump.companies as Row[]).some((c) => c.id === id)),
            );
            same(withoutTimestampsOf(second.dump, recreated), withoutTimestampsOf(first.dump, recreated), where);
            const ids = entries(second.xml).map((e) => e.id);
            same(
              entries(second.xml).filter((e, i) => e.status !== 'SKIPPED' && e.status !== 'FAILED' && !contested(doc, ids, i)),
              [],
              where,
            );
          }
        } finally {
          await closeWorld(world);
        }
      }),
      runs(60),
    );
    expect(held).toBeGreaterThan(2 * excused);
  });
});
