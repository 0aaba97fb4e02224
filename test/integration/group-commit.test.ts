import { emptyChangeSet } from '../../src/domain/changes';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT_GROUP } from '../../src/domain/principals';
import { newUserRecord } from '../../src/domain/users';
import { openStore } from '../../src/store/open-store';
import type { BatchTransaction, Store, StoredChangeSet } from '../../src/store/store';
import { dropTestDb, newTestDb, queryRows, STORE_KIND } from '../support/stores';

/**
 * Batches that wait for the SQLite writer at the same time share one commit (a group commit);
 * on PostgreSQL each has its own transaction behind a lock. Either way it must not be visible:
 * each batch stays all-or-nothing and its own, in arrival order.
 */
describe('concurrent batches of one process stay separate (SQLite: group commit)', () => {
  let dir: string;
  let db: string;
  let store: Store;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flexi-group-'));
    db = newTestDb(dir);
    store = await openStore(db);
  });
  afterEach(async () => {
    await store.close();
    dropTestDb(db);
    rmSync(dir, { recursive: true, force: true });
  });

  const oneUser = (username: string): StoredChangeSet => ({ ...emptyChangeSet(), users: [newUserRecord(username, ROOT_GROUP)] });
  const usernames = (): string[] => queryRows(db, 'SELECT username FROM users ORDER BY username').map((r) => r.username as string);
  const journalOrder = (): string[] => queryRows(db, 'SELECT batch_id FROM batch_journal ORDER BY seq').map((r) => r.batch_id as string);
  const journalled = async (tx: BatchTransaction, id: string): Promise<void> =>
    tx.journal({
      batchId: id,
      credential: 'test',
      principal: 'test',
      impersonated: null,
      actingUser: null,
      scope: ROOT_GROUP,
      receivedAt: new Date().toISOString(),
      finishedAt: new Date().toISOString(),
      bodySha256: id,
      resultXml: '<r/>',
    });

  test('when one of several concurrent batches fails after writing, then only its writes are undone and the others are committed', async () => {
    const outcomes = await Promise.allSettled(
      ['a', 'b', 'c', 'd'].map((name) =>
        store.inBatch(async (tx) => {
          await tx.apply(oneUser(`group.${name}`));
          await journalled(tx, name);
          if (name === 'b') throw new Error('batch b fails after its writes');
          return name;
        }),
      ),
    );
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect((outcomes[1] as PromiseRejectedResult).reason).toEqual(new Error('batch b fails after its writes'));
    expect(usernames()).toEqual(['group.a', 'group.c', 'group.d']);
    expect(journalOrder()).toEqual(['a', 'c', 'd']);
  });

  // The first batch of a group runs without a savepoint (its undo is the transaction's rollback).
  test('when the first of several concurrent batches fails after writing, then only its writes are undone and the ones after it are committed', async () => {
    const outcomes = await Promise.allSettled(
      ['a', 'b', 'c'].map((name) =>
        store.inBatch(async (tx) => {
          await tx.apply(oneUser(`first.${name}`));
          await journalled(tx, name);
          if (name === 'a') throw new Error('batch a fails after its writes');
          return name;
        }),
      ),
    );
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
    expect((outcomes[0] as PromiseRejectedResult).reason).toEqual(new Error('batch a fails after its writes'));
    expect(usernames()).toEqual(['first.b', 'first.c']);
    expect(journalOrder()).toEqual(['b', 'c']);
  });

  test('when batches arrive while others wait, then they are applied in arrival order and every one is answered', async () => {
    const order: string[] = [];
    const run = (name: string): Promise<string> =>
      store.inBatch(async (tx) => {
        order.push(name);
        await tx.apply(oneUser(`order.${name}`));
        await journalled(tx, name);
        return name;
      });
    const first = ['1', '2', '3'].map(run);
    // Queued while the first group may already be running.
    await Promise.resolve();
    const later = ['4', '5'].map(run);
    expect(await Promise.all([...first, ...later])).toEqual(['1', '2', '3', '4', '5']);
    expect(order).toEqual(['1', '2', '3', '4', '5']);
    expect(journalOrder()).toEqual(['1', '2', '3', '4', '5']);
  });

  // SQLite only: on PostgreSQL each batch has its own transaction.
  (STORE_KIND === 'sqlite' ? test : test.skip)("when a batch arrives while a group runs, then it joins that group's commit", async () => {
    let commits = 0;
    const counted = await openStore(join(dir, 'counted.db'), { onCommit: () => commits++ });
    try {
      let late: Promise<string> = Promise.resolve('never sent');
      const early = counted.inBatch(async (tx) => {
        await tx.apply(oneUser('joined.early'));
        // Sent as a request read in the next turn of the event loop would be, while this batch's group is open.
        late = new Promise((resolve) => {
          setImmediate(() =>
            resolve(
              counted.inBatch(async (next) => {
                await next.apply(oneUser('joined.late'));
                return 'late';
              }),
            ),
          );
        });
        return 'early';
      });
      expect(await early).toBe('early');
      expect(await late).toBe('late');
      expect(commits).toBe(1);
      expect(queryRows(join(dir, 'counted.db'), "SELECT username FROM users WHERE username LIKE 'joined.%' ORDER BY username").map((r) => r.username)).toEqual([
        'joined.early',
        'joined.late',
      ]);
    } finally {
      await counted.close();
    }
  });

  test('when a batch is answered, then its writes are already committed (readable from another connection)', async () => {
    const seen = await Promise.all(
      ['x', 'y'].map(async (name) => {
        await store.inBatch(async (tx) => tx.apply(oneUser(`durable.${name}`)));
        return usernames().includes(`durable.${name}`);
      }),
    );
    expect(seen).toEqual([true, true]);
  });
});
