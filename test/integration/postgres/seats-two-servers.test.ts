import { entries } from '../../support/server';
import { batchDoc, deleteUserOp, groupOp, seatsInUse, seatsUsed, userOp } from '../../support/tenants';
import { putBatch, serve, serverFaults, sharedDatabase } from './helpers';

/**
 * SPEC §7.2 across processes: two `serve` processes on one PostgreSQL database, each sent half
 * of many one-user batches at once, race for the last free seats of a group and of its subgroup.
 * Exactly as many users get in as there were free seats — counted in the store's rows — and every
 * other batch is refused with the full group's message.
 */
const RACERS = 16;

describe('two serve processes racing for the last seats of a group', () => {
  const suite = sharedDatabase();

  test(`when ${RACERS} one-user batches go to two processes at once for the last free seats, then exactly that many users get in, each other one is refused naming the full group, and a delete frees seats for the next race`, async () => {
    const { pki, db, servers } = suite;
    const [a, b] = await Promise.all([serve(db, pki, servers), serve(db, pki, servers)]);
    const ports = [a.port, b.port];
    const seeded = await putBatch(
      a.port,
      pki,
      batchDoc(
        'race-seed',
        groupOp('race', { name: 'Race', seats: 10 }),
        groupOp('race_sub', { name: 'Race sub', parent: 'race', seats: 5 }),
        ...Array.from({ length: 4 }, (_, i) => userOp(`seed.${i}`, { licenseGroup: 'race' })),
        ...Array.from({ length: 3 }, (_, i) => userOp(`seed.sub.${i}`, { licenseGroup: 'race_sub' })),
      ),
    );
    expect(entries(seeded.body).filter((e) => e.status !== 'CREATED')).toEqual([]);
    expect(seatsUsed(db)).toMatchObject({ race: 7, race_sub: 3 });

    /** One race: RACERS one-user batches, alternately to each process, all sent at once; the usernames that got in. */
    const race = async (round: number): Promise<string[]> => {
      const answers = await Promise.all(
        Array.from({ length: RACERS }, (_, i) => {
          const username = `r${round}.u${i}`;
          const group = i % 4 < 2 ? 'race' : 'race_sub';
          return putBatch(ports[i % 2], pki, batchDoc(`race-${round}-${i}`, userOp(username, { licenseGroup: group })), `round ${round} racer ${i}`);
        }),
      );
      const won: string[] = [];
      for (const res of answers) {
        expect({ status: res.status, body: res.status === 200 ? '' : res.body }).toEqual({ status: 200, body: '' });
        const [entry] = entries(res.body);
        if (entry.status === 'CREATED') won.push(entry.id);
        else expect([entry.status, entry.message]).toEqual(['FAILED', expect.stringMatching(/^no free license in group (race \(10 of 10|race_sub \(5 of 5) used\)$/)]);
      }
      return won;
    };

    expect(await race(1)).toHaveLength(3);
    expect(seatsInUse(db)).toMatchObject({ race: 10 });
    expect(seatsInUse(db).race_sub).toBeLessThanOrEqual(5);
    expect(seatsUsed(db)).toEqual(seatsInUse(db));

    const freed = await putBatch(b.port, pki, batchDoc('race-free', deleteUserOp('seed.0'), deleteUserOp('seed.1'), deleteUserOp('seed.sub.0'), deleteUserOp('seed.sub.1')));
    expect(entries(freed.body).map((e) => e.status)).toEqual(['DELETED', 'DELETED', 'DELETED', 'DELETED']);
    expect(seatsUsed(db).race).toBe(6);

    expect(await race(2)).toHaveLength(4);
    expect(seatsInUse(db)).toMatchObject({ race: 10 });
    expect(seatsInUse(db).race_sub).toBeLessThanOrEqual(5);
    expect(seatsUsed(db)).toEqual(seatsInUse(db));

    for (const { server } of [a, b]) expect(serverFaults(server)).toEqual([]);
  });
});
