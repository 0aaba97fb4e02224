import { startTestServer, statuses, type TestServer } from '../support/server';

/**
 * A batch may undo its own work (SPEC §5.2) also for license groups: a group created and deleted
 * in one batch leaves nothing, and one deleted and created again under the same id is a new group
 * that inherits nothing of the old one.
 */
describe('license groups created and deleted in one batch (SPEC §7.1, §5.2)', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());

  const group = async (id: string): Promise<{ status: number; group?: Record<string, unknown> }> => {
    const res = await server.request('GET', `/g/${id}.json`);
    return res.status === 200 ? { status: 200, group: (JSON.parse(res.body) as { winstrom: { group: Record<string, unknown>[] } }).winstrom.group[0] } : { status: res.status };
  };

  test('when a group is created, given a subgroup that moves away, and deleted in one batch, then only the subgroup is left, under its new parent', async () => {
    const res = await server.batch(`<flexibee-batch id="gl-1">
      <licenseGroup><id>gl_tmp</id><name>Temporary</name></licenseGroup>
      <licenseGroup><id>gl_child</id><name>Child</name><parent>gl_tmp</parent></licenseGroup>
      <licenseGroup><id>gl_child</id><parent>root</parent></licenseGroup>
      <licenseGroup action="delete"><id>gl_tmp</id></licenseGroup>
    </flexibee-batch>`);
    expect(statuses(res.body)).toEqual(['CREATED', 'CREATED', 'UPDATED', 'DELETED']);
    expect((await group('gl_tmp')).status).toBe(404);
    expect((await group('gl_child')).group).toMatchObject({ id: 'gl_child', parent: 'root', path: ['root', 'gl_child'] });
    const again = await server.batch(`<flexibee-batch id="gl-1b">
      <licenseGroup><id>gl_tmp</id><name>Temporary</name></licenseGroup>
      <licenseGroup action="delete"><id>gl_tmp</id></licenseGroup>
    </flexibee-batch>`);
    expect(statuses(again.body)).toEqual(['CREATED', 'DELETED']);
    expect((await group('gl_tmp')).status).toBe(404);
  });

  test('when a group is deleted and created again under the same id in one batch, then the new group has the new name and place, and the old one\'s deleted users went to its parent', async () => {
    const setup = await server.batch(`<flexibee-batch id="gl-2a">
      <licenseGroup><id>gl_p1</id><name>P1</name></licenseGroup>
      <licenseGroup><id>gl_p2</id><name>P2</name></licenseGroup>
      <licenseGroup><id>gl_x</id><name>Old X</name><parent>gl_p1</parent><seats>5</seats></licenseGroup>
      <user><username>gl.gone</username><licenseGroup>gl_x</licenseGroup></user>
      <user action="delete"><username>gl.gone</username></user>
    </flexibee-batch>`);
    expect(statuses(setup.body)).toEqual(['CREATED', 'CREATED', 'CREATED', 'CREATED', 'DELETED']);
    const res = await server.batch(`<flexibee-batch id="gl-2b">
      <licenseGroup action="delete"><id>gl_x</id></licenseGroup>
      <licenseGroup><id>gl_x</id><name>New X</name><parent>gl_p2</parent></licenseGroup>
    </flexibee-batch>`);
    expect(statuses(res.body)).toEqual(['DELETED', 'CREATED']);
    expect((await group('gl_x')).group).toMatchObject({ id: 'gl_x', name: 'New X', parent: 'gl_p2', path: ['root', 'gl_p2', 'gl_x'], seats: null, seatsUsed: 0 });
    expect((await group('gl_p1')).group).toMatchObject({ children: [] });
    // The deleted user went with the old group's leftovers to gl_p1: restoring it puts it there.
    const restored = await server.batch('<flexibee-batch id="gl-2c"><user><username>gl.gone</username></user></flexibee-batch>');
    expect(statuses(restored.body)).toEqual(['CREATED']);
    const user = await server.request('GET', '/u/gl.gone.json');
    expect(JSON.parse(user.body)).toMatchObject({ winstrom: { user: [{ licenseGroup: 'gl_p1' }] } });
  });
});
