import { copyFileSync, renameSync, rmSync } from 'node:fs';
import { parseXmlDocument } from '../../src/xml/reader';
import { STORE_KIND } from '../support/stores';
import { startTestServer, statuses, type Response, type TestServer } from '../support/server';

/**
 * Issue #9, point 10: the SQLite file deleted or replaced under a running server. SQLite goes on
 * writing to the files it has open, the next start opens whatever the path names: without a
 * check every batch from then on would answer 200 and be lost. The server compares the files the
 * path names with the ones it opened (device and inode of the database, -wal and -shm) before
 * each write and in /status.json.
 *
 * SQLite only: jest.config.js leaves this file out of the postgres project, where the store is a
 * server, not a file.
 */
if (STORE_KIND !== 'sqlite') throw new Error('sqlite-file-gone.test.ts runs on the sqlite project only (see jest.config.js)');

const batch = (id: string, inner: string): string => `<flexibee-batch id="${id}">${inner}</flexibee-batch>`;
const user = (name: string, extra = ''): string => `<user><username>${name}</username>${extra}</user>`;

function messageOf(res: Response): string {
  return parseXmlDocument(res.body).children.find((c) => c.name === 'message')?.text ?? '';
}

describe('SQLite store: the database file deleted or replaced under a running server', () => {
  let server: TestServer;
  beforeEach(async () => {
    server = await startTestServer();
    const seeded = await server.batch(batch('seed', user('anna', '<password>correct horse battery</password>')));
    expect(statuses(seeded.body)).toEqual(['CREATED']);
  });
  afterEach(() => server.close());

  test('when the file, its -wal and its -shm are deleted, then a batch answers 503 naming the file and a restart, nothing is applied, and /status.json answers 503 store-gone', async () => {
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${server.db}${suffix}`);

    const res = await server.batch(batch('after', user('bert')));
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBeUndefined();
    expect(messageOf(res)).toBe(
      `The SQLite file ${server.db} was deleted while the server was running; anything written now would be lost at the next start, so nothing was applied. The server must be restarted (restore the file from a backup first if it was lost).`,
    );
    // Reads still come from the file the server has open: the batch did not reach even that one.
    expect((await server.request('GET', '/u/bert.xml')).status).toBe(404);
    expect((await server.request('GET', '/u/anna.xml')).status).toBe(200);

    const status = await server.request('GET', '/status.json', { client: null });
    expect(status.status).toBe(503);
    expect(JSON.parse(status.body)).toEqual({
      status: 'store-gone',
      store: { kind: 'sqlite', ok: false, error: 'The store file was deleted or replaced while the server was running; nothing was applied, and nothing can be until the server is restarted.' },
      limits: expect.any(Object),
    });
    // Unauthenticated endpoints say what happened, not where the file lives.
    expect(status.body).not.toContain(server.db);
    expect(server.logs.some((line) => line.includes('"status":503') && line.includes(JSON.stringify(server.db).slice(1, -1)))).toBe(true);
  });

  test('when the file is deleted, then a login (which writes a session) answers 503 without naming the file', async () => {
    rmSync(server.db);
    const res = await server.request('POST', '/login-logout/login.xml', {
      client: null,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'anna', password: 'correct horse battery' }),
    });
    expect(res.status).toBe(503);
    expect(messageOf(res)).toBe('The store file was deleted or replaced while the server was running; nothing was applied, and nothing can be until the server is restarted.');
  });

  test('when only the -wal file is deleted, then a batch answers 503 naming that file', async () => {
    rmSync(`${server.db}-wal`);
    const res = await server.batch(batch('after', user('bert')));
    expect(res.status).toBe(503);
    expect(messageOf(res)).toMatch(new RegExp(`^The file ${server.db}-wal of the SQLite store ${server.db} was deleted while the server was running;`));
    expect((await server.request('GET', '/status.json', { client: null })).status).toBe(503);
  });

  test('when the file is replaced by a copy of itself, then a batch answers 503 saying it was replaced', async () => {
    copyFileSync(server.db, `${server.db}.copy`);
    renameSync(`${server.db}.copy`, server.db);
    const res = await server.batch(batch('after', user('bert')));
    expect(res.status).toBe(503);
    expect(messageOf(res)).toMatch(new RegExp(`^The SQLite file ${server.db} was replaced by another file while the server was running;`));
  });

  test('when the file is moved away and back, then batches answer 503 while it is away and are applied again once it is back', async () => {
    renameSync(server.db, `${server.db}.away`);
    expect((await server.batch(batch('away', user('bert')))).status).toBe(503);
    renameSync(`${server.db}.away`, server.db);
    const back = await server.batch(batch('back', user('bert')));
    expect(statuses(back.body)).toEqual(['CREATED']);
    expect((await server.request('GET', '/status.json', { client: null })).status).toBe(200);
  });
});
