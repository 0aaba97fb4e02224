import { entries } from '../../support/server';
import { queryRows } from '../../support/stores';
import { getPath, putBatch, serve, sharedDatabase } from './helpers';

/**
 * SPEC §10.1 across processes: `seq` is the commit order of the whole store, also when two `serve`
 * processes commit on one PostgreSQL database at once. Each batch sets a shared user's family name
 * to its own number: whichever batch committed last left its number there, and it must be the
 * batch whose events have the highest seq.
 */
const BATCHES = 24;

const batch = (k: number): string =>
  `<flexibee-batch id="ev2-${k}">` +
  `<user><username>ev2.shared</username><familyName>batch ${k}</familyName></user>` +
  `<user><username>ev2.b${k}.one</username></user><user><username>ev2.b${k}.two</username></user>` +
  `</flexibee-batch>`;

interface FeedEvent {
  seq: number;
  id: string;
  type: string;
  batchId: string;
  entity: { id: string };
}

describe('event seq across two server processes on one PostgreSQL', () => {
  const suite = sharedDatabase();

  test(`when ${BATCHES} batches go to two processes at once, then seq numbers every event once, each batch's events are consecutive, and the batch with the last seqs is the one that committed last`, async () => {
    const { pki, db, servers } = suite;
    const [a, b] = await Promise.all([serve(db, pki, servers), serve(db, pki, servers)]);
    const ports = [a.port, b.port];
    const answers = await Promise.all(Array.from({ length: BATCHES }, (_, k) => putBatch(ports[k % 2], pki, batch(k), `batch ${k}`)));
    for (const res of answers) expect({ status: res.status, entries: entries(res.body).map((e) => e.status), body: res.status === 200 ? '' : res.body }).toEqual({ status: 200, entries: [expect.stringMatching(/^(CREATED|UPDATED)$/), 'CREATED', 'CREATED'], body: '' });

    const feeds = await Promise.all(ports.map(async (port) => JSON.parse((await getPath(port, pki, '/events.json?after=0&limit=1000')).body) as { events: FeedEvent[]; next: number }));
    // Both processes read the same feed.
    expect(feeds[1]).toEqual(feeds[0]);
    const events = feeds[0].events;
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: events.length }, (_, i) => i + 1));
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);

    // Each batch's events form one block of consecutive seqs: its commit.
    const order: string[] = [];
    for (const e of events) if (order.at(-1) !== e.batchId) order.push(e.batchId);
    expect(order).toHaveLength(BATCHES);
    expect(new Set(order).size).toBe(BATCHES);
    // The journal commits in the same order as the events, and the last of them left its value.
    const journal = queryRows(db, 'SELECT batch_id FROM batch_journal ORDER BY seq').map((r) => r.batch_id);
    expect(journal).toEqual(order);
    const last = order.at(-1) as string;
    expect(queryRows(db, "SELECT family_name FROM users WHERE key = 'ev2.shared'")).toEqual([{ family_name: `batch ${last.slice('ev2-'.length)}` }]);
    expect(Number(queryRows(db, "SELECT value FROM counters WHERE name = 'event_seq'")[0].value)).toBe(events.length);
  });
});
