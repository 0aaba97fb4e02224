import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { entries, startTestServer, statuses, validateAnswer, type TestServer } from '../support/server';

/** The corrected full sample (seed sample 08 with anna's digest made whole, fixtures/README.md), as the server's start line names it. */
const SAMPLE = join(__dirname, '..', '..', 'fixtures', 'scenario', '01-full-sample-corrected.xml');

describe('the reference client: curl -T over mutual TLS', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());

  // Async: the server runs in this very process, so a synchronous child would deadlock it.
  async function curl(file: string): Promise<string> {
    const { stdout } = await promisify(execFile)(
      'curl',
      ['-sS', '-T', file, `https://localhost:${server.port}/admin/batch`, '--cacert', server.pki.ca, '-E', server.pki.client, '--key', server.pki.clientKey],
      { encoding: 'utf8' },
    );
    return stdout;
  }

  test('when the documented curl line sends the corrected full sample, then every operation is applied', async () => {
    const body = await curl(SAMPLE);
    validateAnswer('PUT', '/admin/batch', { status: 200, headers: { 'content-type': 'application/xml' }, body });
    expect(statuses(body)).toEqual(['CREATED', 'CREATED', 'CREATED', 'CREATED', 'CREATED', 'CREATED', 'DELETED']);
    expect(entries(body)[3].id).toBe('demo_a_s_');
  });

  test('when the same curl line runs again, then the users, the company and the grant are SKIPPED', async () => {
    const body = await curl(SAMPLE);
    expect(statuses(body)).toEqual(['SKIPPED', 'SKIPPED', 'SKIPPED', 'CREATED', 'SKIPPED', 'CREATED', 'DELETED']);
  });
});
