import { rmSync } from 'node:fs';
import { startCluster, type Cluster } from '../../support/postgres-cluster';
import { entries, freshPkiDir } from '../../support/server';
import { logLines, type Spawned } from '../../support/spawned';
import { dropTestDb, dumpStore, journalSummary } from '../../support/stores';
import { comparableDump } from '../../support/contested';
import {
  envelopeMessage,
  executions,
  getPath,
  holdJournal,
  postgresTestDb,
  lockState,
  putBatch,
  replay,
  serve,
  serverFaults,
  sha256,
  stopServer,
  waitUntil,
  type Reply,
} from './helpers';

/**
 * README "PostgreSQL" and SPEC §5.3: PostgreSQL goes away (`pg_ctl stop -m immediate`, a crash:
 * every connection cut, nothing checkpointed) under a running `serve` while several clients
 * stream mid-size batches to it. Every batch not answered 200 before is answered 503 with
 * Retry-After — never a 500, never a hang —, /status.json says the store is unavailable, the
 * process stays up, and once PostgreSQL is back it serves again by itself. Nothing is
 * half-applied: each batch is wholly in the store or wholly absent; re-sending every batch
 * converges to what a serial replay of the journal gives on a fresh database.
 *
 * The PostgreSQL here is a private cluster of this file (test/support/postgres-cluster.ts), never
 * the shared one on 5432; the serial replay runs on a fresh database of the shared one.
 */
const CLIENTS = 6;
const BATCHES_PER_CLIENT = 8;
const USERS = 100;
const COMPANIES = 50;
const GRANTS = 100;
const ROLES = ['UZIVATEL', 'UCETNI', 'SKLADNIK', 'JENCIST'];

const pad = (n: number): string => String(n).padStart(3, '0');
const userPrefix = (c: number, i: number): string => `down.c${c}b${i}.`;
const companyPrefix = (c: number, i: number): string => `down_c${c}b${i}_`;

/**
 * Batch `i` of client `c`: first what every batch fights over (its client's counter, a shared
 * user, a shared company and a grant there), then its own users, companies with their admins,
 * and grants — so whether it is in the store, and wholly, can be read from the rows.
 */
function downBatch(c: number, i: number): string {
  const tag = `c${c}b${i}`;
  const user = (k: number): string => `${userPrefix(c, i)}u${pad(k)}`;
  const company = (k: number): string => `${companyPrefix(c, i)}${pad(k)}`;
  const ops = [
    `<user><username>down.counter.c${c}</username><familyName>${i}</familyName></user>`,
    `<user><username>shared.anna</username><email>${tag}@down.example</email><familyName>Last ${tag}</familyName></user>`,
  ];
  for (let k = 0; k < USERS; k++) ops.push(`<user><username>${user(k)}</username><email>u${k}@${tag}.example</email><familyName>Number ${k}</familyName></user>`);
  ops.push(`<company><id>down_shared</id><name>Shared by ${tag}</name><country>CZ</country><adminUser>${user(0)}</adminUser></company>`);
  ops.push(`<access user="shared.anna" role="${ROLES[(c + i) % ROLES.length]}">down_shared</access>`);
  for (let k = 0; k < COMPANIES; k++) ops.push(`<company><id>${company(k)}</id><name>Down ${tag} ${k} s.r.o.</name><country>CZ</country><adminUser>${user(k)}</adminUser></company>`);
  for (let g = 0; g < GRANTS; g++) {
    const k = g % COMPANIES;
    ops.push(`<access user="${user((k + 1 + Math.floor(g / COMPANIES)) % USERS)}" role="UCETNI">${company(k)}</access>`);
  }
  return `<?xml version="1.0" encoding="UTF-8"?>\n<flexibee-batch id="down-${c}-${i}">\n  ${ops.join('\n  ')}\n</flexibee-batch>\n`;
}

type Rows = Record<string, Array<Record<string, unknown>>>;

/** Its own rows of each batch and its journal count: ABSENT or PRESENT (wholly), anything else is half a batch. */
function batchStates(db: string, batches: ReadonlyArray<{ c: number; i: number; sha: string }>): Map<string, { users: number; companies: number; grants: number; journal: number }> {
  const dump = dumpStore(db) as Rows;
  const journal = journalSummary(db);
  const out = new Map<string, { users: number; companies: number; grants: number; journal: number }>();
  for (const { c, i, sha } of batches) {
    out.set(sha, {
      users: dump.users.filter((u) => String(u.key).startsWith(userPrefix(c, i))).length,
      companies: dump.companies.filter((x) => String(x.id).startsWith(companyPrefix(c, i))).length,
      grants: dump.access.filter((a) => String(a.company_id).startsWith(companyPrefix(c, i))).length,
      journal: journal.filter((j) => j.body_sha256 === sha).length,
    });
  }
  return out;
}
const ABSENT = { users: 0, companies: 0, grants: 0, journal: 0 };
// Each company's admin grant plus the explicit ones; a batch answered 200 once is journalled once.
const PRESENT = { users: USERS, companies: COMPANIES, grants: COMPANIES + GRANTS, journal: 1 };

interface Sent {
  c: number;
  i: number;
  sha: string;
  body: string;
  /** The answer before and during the outage. */
  first?: Reply;
  /** The answer to the re-send once PostgreSQL is back. */
  resent?: Reply;
}

describe('PostgreSQL goes away under a running server', () => {
  let cluster: Cluster;
  let pki: string;
  const servers: Spawned[] = [];
  const dbs: string[] = [];

  beforeAll(async () => {
    pki = freshPkiDir();
    cluster = await startCluster();
  }, 120_000);
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => stopServer(s)));
    for (const db of dbs.splice(0)) dropTestDb(db);
    // A failed test may have left it stopped; the next one needs it.
    if (!cluster.isRunning()) await cluster.start();
  }, 120_000);
  afterAll(async () => {
    await cluster?.destroy();
    rmSync(pki, { recursive: true, force: true });
  }, 120_000);

  /**
   * The whole scenario. With `hold`, the stop comes while one batch is certainly half-way (its
   * rows written, blocked at its journal insert, holding the batch lock) and two more have
   * claimed and wait behind it; without, it comes at whatever moment the stream has reached once `stopAfter`
   * batches were answered.
   */
  async function outage(name: string, options: { hold: boolean; stopAfter: number }): Promise<{ sent: Sent[]; unanswered: number }> {
    const db = await cluster.createDatabase(name);
    const { server, port } = await serve(db, pki, servers);
    const alive = (): boolean => server.child.exitCode === null && server.child.signalCode === null;
    const batches: Sent[] = [];
    for (let c = 0; c < CLIENTS; c++) {
      for (let i = 0; i < BATCHES_PER_CLIENT; i++) {
        const body = downBatch(c, i);
        batches.push({ c, i, sha: sha256(body), body });
      }
    }
    const ofClient = (c: number): Sent[] => batches.filter((b) => b.c === c);
    let ok = 0;
    const send = async (b: Sent): Promise<void> => {
      b.first = await putBatch(port, pki, b.body, `client ${b.c} batch ${b.i}`);
      if (b.first.status === 200) ok++;
    };

    if (options.hold) {
      // Two batches per client go through first, then the stream meets a held journal.
      await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
        for (const b of ofClient(c).slice(0, 2)) await send(b);
      }));
      expect(ok).toBe(2 * CLIENTS);
      const hold = await holdJournal(db);
      try {
        const stream = Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
          for (const b of ofClient(c).slice(2)) await send(b);
        }));
        await waitUntil(
          () => {
            const locks = lockState(db);
            // The running batch holds the batch lock and its claim; two more hold their claims and
            // wait their turn (in arrival order, in the server, before they ask for the batch lock).
            return locks.journalWaiting === 1 && locks.advisoryGranted >= 4;
          },
          'one batch waits at its journal insert and two more have claimed and wait behind it',
          60_000,
          () => JSON.stringify(lockState(db)),
        );
        expect(ok).toBe(2 * CLIENTS);
        await cluster.stop('immediate');
        await stream;
      } finally {
        await hold.release();
      }
    } else {
      let stop: Promise<void> | undefined;
      await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
        for (const b of ofClient(c)) {
          await send(b);
          if (ok >= options.stopAfter) stop ??= cluster.stop('immediate');
        }
      }));
      await (stop ?? cluster.stop('immediate'));
    }

    // While PostgreSQL is down: a new batch gets 503 as well, and the status says why.
    const probeBody = downBatch(CLIENTS, 0);
    const probe: Sent = { c: CLIENTS, i: 0, sha: sha256(probeBody), body: probeBody };
    batches.push(probe);
    await send(probe);
    expect(probe.first?.status).toBe(503);
    const status = await getPath(port, pki, '/status.json');
    expect(status.status).toBe(503);
    expect(JSON.parse(status.body)).toMatchObject({ status: 'store-unavailable', store: { kind: 'postgres', ok: false } });

    // Every batch got an answer: 200 (before the stop), otherwise 503 with Retry-After in the Flexi envelope.
    for (const b of batches) {
      const res = b.first as Reply;
      if (res.status === 200) continue;
      expect({ batch: `${b.c}/${b.i}`, status: res.status, body: res.body }).toEqual({ batch: `${b.c}/${b.i}`, status: 503, body: res.body });
      expect(res.headers['retry-after']).toBe('1');
      expect(envelopeMessage(res)).toMatch(/unavailable|not applied/i);
    }
    expect(alive()).toBe(true);

    await cluster.start();
    // The pool reconnects by itself: the same process answers normally again.
    await waitUntil(async () => (await getPath(port, pki, '/status.json')).status === 200, '/status.json says ok again', 60_000);
    expect(alive()).toBe(true);
    expect(JSON.parse((await getPath(port, pki, '/status.json')).body)).toMatchObject({ status: 'ok', store: { kind: 'postgres', ok: true } });

    // Nothing half-applied: each batch wholly there or wholly absent; answered 200 means there.
    const before = batchStates(db, batches);
    const unanswered = batches.filter((b) => b.first?.status !== 200);
    for (const b of batches) {
      const state = before.get(b.sha);
      if (b.first?.status === 200) expect({ batch: `${b.c}/${b.i}`, state }).toEqual({ batch: `${b.c}/${b.i}`, state: PRESENT });
      else expect([{ batch: `${b.c}/${b.i}`, state: ABSENT }, { batch: `${b.c}/${b.i}`, state: PRESENT }]).toContainEqual({ batch: `${b.c}/${b.i}`, state });
    }
    if (options.hold) {
      // The batch that was half-way and those queued behind it were rolled back with the crash.
      for (const b of unanswered) expect({ batch: `${b.c}/${b.i}`, state: before.get(b.sha) }).toEqual({ batch: `${b.c}/${b.i}`, state: ABSENT });
    }

    // Every batch again, same ids and bodies, each client in its own order.
    await Promise.all(Array.from({ length: CLIENTS + 1 }, async (_, c) => {
      for (const b of batches.filter((x) => x.c === c)) {
        b.resent = await putBatch(port, pki, b.body, `re-send of client ${b.c} batch ${b.i}`);
        expect({ batch: `${b.c}/${b.i}`, status: b.resent.status }).toEqual({ batch: `${b.c}/${b.i}`, status: 200 });
      }
    }));
    const after = batchStates(db, batches);
    for (const b of batches) {
      expect({ batch: `${b.c}/${b.i}`, state: after.get(b.sha) }).toEqual({ batch: `${b.c}/${b.i}`, state: { ...PRESENT, journal: (before.get(b.sha)?.journal ?? 0) + 1 } });
      // A batch that was in the store already is all SKIPPED in its own rows the second time.
      const own = entries(b.resent?.body ?? '').filter((e) => e.id.startsWith(userPrefix(b.c, b.i)) || e.id.includes(companyPrefix(b.c, b.i)));
      expect(own).toHaveLength(USERS + COMPANIES + GRANTS);
      expect(new Set(own.map((e) => e.status))).toEqual(new Set([before.get(b.sha)?.journal ? 'SKIPPED' : 'CREATED']));
    }

    // No update lost: each client's counter holds its last batch.
    const dump = dumpStore(db) as Rows;
    const counters = dump.users.filter((u) => String(u.key).startsWith('down.counter.')).map((u) => [u.key, u.family_name]);
    expect(counters).toEqual(Array.from({ length: CLIENTS + 1 }, (_, c) => [`down.counter.c${c}`, String(c === CLIENTS ? 0 : BATCHES_PER_CLIENT - 1)]));

    // The journal is one serial order: each answer a client got is what the journal recorded, and
    // replaying the journal one batch at a time on a fresh database gives the same answers and store.
    const bodies = new Map(batches.map((b) => [b.sha, b.body]));
    const order = executions(db, bodies);
    for (const b of batches) {
      const recorded = order.filter((o) => o.sha === b.sha).map((o) => o.resultXml);
      const got = [b.first?.status === 200 ? b.first.body : undefined, b.resent?.body].filter((x): x is string => x !== undefined);
      // Executions of this body the client saw answered are the first (if 200) and the last; a 503 one may have committed in between.
      expect(recorded.length - got.length).toBeGreaterThanOrEqual(0);
      expect(recorded.length - got.length).toBeLessThanOrEqual(1);
      if (b.first?.status === 200) expect(recorded[0]).toBe(b.first.body);
      expect(recorded[recorded.length - 1]).toBe(b.resent?.body);
    }
    const fresh = postgresTestDb();
    dbs.push(fresh);
    const replayed = await serve(fresh, pki, servers);
    expect(await replay(order, replayed.port, pki)).toEqual([]);
    expect(comparableDump(fresh, [])).toEqual(comparableDump(db, []));

    // The process was never restarted, never answered 500, and shuts down cleanly.
    expect(serverFaults(server)).toEqual([]);
    expect(logLines(server).filter((l) => l.msg === 'request' && l.status === 500)).toEqual([]);
    expect(await stopServer(server)).toEqual({ code: 0, signal: null });
    if (process.env.OUTAGE_TEST_DEBUG) {
      const messages = new Set(unanswered.map((b) => (b.first ? envelopeMessage(b.first) : '')));
      const committed = unanswered.filter((b) => before.get(b.sha)?.journal).length;
      process.stderr.write(`${name}: ${batches.length - unanswered.length} answered 200, ${unanswered.length} answered 503 (${committed} of them committed); 503 messages:\n  ${[...messages].join('\n  ')}\n`);
    }
    return { sent: batches, unanswered: unanswered.length };
  }

  test('when PostgreSQL crashes while one batch is half-way and others wait behind it, then every unanswered batch gets 503 with Retry-After and is wholly absent, the status says the store is unavailable, and once PostgreSQL is back the same process takes the re-sent batches to the state of a serial replay', async () => {
    const { unanswered } = await outage('down_hold', { hold: true, stopAfter: 0 });
    // Six per client after the held journal, and the probe.
    expect(unanswered).toBe(CLIENTS * (BATCHES_PER_CLIENT - 2) + 1);
  }, 300_000);

  test('when PostgreSQL crashes at an arbitrary moment of a stream of batches, then each batch is answered 200 or 503 with Retry-After, is wholly there or wholly absent, and re-sending them all converges to a serial replay', async () => {
    const { sent, unanswered } = await outage('down_stream', { hold: false, stopAfter: 2 * CLIENTS });
    expect(unanswered).toBeGreaterThanOrEqual(1);
    expect(sent.length - unanswered).toBeGreaterThanOrEqual(2 * CLIENTS);
  }, 300_000);
});
