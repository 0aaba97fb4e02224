/**
 * SPEC §7.2 under concurrency: eight HTTPS clients at once create users in a group with a seat
 * limit and in its subgroups (each with a limit of its own), delete, move and upgrade READ_ONLY
 * users, and no limit is ever exceeded — checked with the users' rows in the store, not only with
 * the answers — while every answer agrees with what the store holds.
 */
import { Rng } from '../support/batch-generator';
import { entries, startTestServer, type TestServer } from '../support/server';
import { queryRows } from '../support/stores';
import { batchDoc, deleteUserOp, groupOp, seatsInUse, seatsUsed, userOp } from '../support/tenants';

const CLIENTS = 8;
const BATCHES_PER_CLIENT = 15;
const OPERATIONS_PER_BATCH = 3;
/** quota holds 12 seats for its whole subtree; sub1 and sub2 6 each, sub1a (below sub1) 2. */
const LIMITS: Record<string, number> = { quota: 12, sub1: 6, sub2: 6, sub1a: 2 };
const GROUPS = Object.keys(LIMITS);
const NO_SEAT = /^no free license in group (quota|sub1|sub2|sub1a) \((\d+) of \2 used\)$/;

type UserType = 'NORMAL' | 'REST_API' | 'READ_ONLY';

describe('seat limits under concurrent batches (SPEC §7.2)', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
    const seeded = await server.batch(
      batchDoc(
        'seats-tree',
        groupOp('quota', { name: 'Quota', seats: LIMITS.quota }),
        groupOp('sub1', { name: 'Sub 1', parent: 'quota', seats: LIMITS.sub1 }),
        groupOp('sub2', { name: 'Sub 2', parent: 'quota', seats: LIMITS.sub2 }),
        groupOp('sub1a', { name: 'Sub 1a', parent: 'sub1', seats: LIMITS.sub1a }),
      ),
    );
    expect(entries(seeded.body).map((e) => e.status)).toEqual(['CREATED', 'CREATED', 'CREATED', 'CREATED']);
  });
  afterAll(() => server.close());

  test(`when ${CLIENTS} clients at once create, delete, move and upgrade users in a group and its subgroups, then no limit is ever exceeded, each refusal names a full group, and the store holds exactly what the answers say`, async () => {
    const failures: Record<string, number> = Object.fromEntries(GROUPS.map((g) => [g, 0]));
    let created = 0;
    let deleted = 0;
    /** What each client's answers say it has: username → group and type. */
    const held: Array<Map<string, { group: string; type: UserType }>> = Array.from({ length: CLIENTS }, () => new Map());
    let inFlight = 0;
    let mostInFlight = 0;

    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        const rng = new Rng(9100 + c);
        const mine = held[c];
        let next = 0;
        for (let b = 0; b < BATCHES_PER_CLIENT; b++) {
          const ops: Array<{ xml: string; apply(status: string): void }> = [];
          const touched = new Set<string>();
          for (let o = 0; o < OPERATIONS_PER_BATCH; o++) {
            const alive = [...mine.keys()].filter((u) => !touched.has(u));
            const roll = rng.next();
            const someone = alive.length ? rng.pick(alive) : undefined;
            if (someone && roll < 0.15) {
              touched.add(someone);
              ops.push({
                xml: deleteUserOp(someone),
                apply: (status) => {
                  if (status !== 'DELETED') return;
                  mine.delete(someone);
                  deleted++;
                },
              });
            } else if (someone && roll < 0.3) {
              const group = rng.pick(GROUPS);
              touched.add(someone);
              const { type } = mine.get(someone) as { type: UserType };
              ops.push({ xml: userOp(someone, { licenseGroup: group }), apply: (status) => void (status === 'UPDATED' && mine.set(someone, { group, type })) });
            } else if (someone && roll < 0.45 && mine.get(someone)?.type === 'READ_ONLY') {
              touched.add(someone);
              const { group } = mine.get(someone) as { group: string };
              ops.push({ xml: userOp(someone, { userType: 'NORMAL' }), apply: (status) => void (status === 'UPDATED' && mine.set(someone, { group, type: 'NORMAL' })) });
            } else {
              const username = `c${c}.u${next++}`;
              const group = rng.pick(GROUPS);
              const type: UserType = rng.chance(0.8) ? 'NORMAL' : rng.chance(0.5) ? 'REST_API' : 'READ_ONLY';
              touched.add(username);
              ops.push({
                xml: userOp(username, { licenseGroup: group, userType: type }),
                apply: (status) => {
                  if (status !== 'CREATED') return;
                  mine.set(username, { group, type });
                  created++;
                },
              });
            }
          }
          inFlight++;
          mostInFlight = Math.max(mostInFlight, inFlight);
          const res = await server.batch(batchDoc(`seats-c${c}-b${b}`, ...ops.map((op) => op.xml)));
          inFlight--;
          expect(res.status).toBe(200);
          const answer = entries(res.body);
          expect(answer).toHaveLength(ops.length);
          answer.forEach((entry, i) => {
            if (entry.status === 'FAILED') {
              const m = NO_SEAT.exec(entry.message ?? '');
              if (!m) throw new Error(`client ${c} batch ${b}: ${entry.id} FAILED for another reason: ${entry.message}`);
              expect(Number(m[2])).toBe(LIMITS[m[1]]);
              failures[m[1]]++;
            }
            ops[i].apply(entry.status);
          });
        }
      }),
    );
    expect(mostInFlight).toBe(CLIENTS);

    // The limits held: counted from the users' rows and the parent links, independently of seats_used.
    const inUse = seatsInUse(server.db);
    for (const [group, limit] of Object.entries(LIMITS)) expect([group, inUse[group] <= limit]).toEqual([group, true]);
    expect(seatsUsed(server.db)).toEqual(inUse);
    // The limits were reached (so the race was real): the outer one and at least one inner one refused seats.
    expect(failures.quota).toBeGreaterThan(0);
    expect(failures.sub1 + failures.sub2 + failures.sub1a).toBeGreaterThan(0);

    // The store holds what the answers said, user by user.
    const rows = queryRows(server.db, "SELECT key, license_group, user_type, deleted FROM users WHERE key LIKE 'c%' ORDER BY key");
    expect(rows).toHaveLength(created);
    expect(rows.filter((r) => Number(r.deleted) === 1)).toHaveLength(deleted);
    const expected = held.flatMap((mine) => [...mine].map(([key, u]) => ({ key, license_group: u.group, user_type: u.type, deleted: 0 })));
    expect(rows.filter((r) => Number(r.deleted) === 0)).toEqual(expected.sort((a, b) => (a.key < b.key ? -1 : 1)));
  });
});
