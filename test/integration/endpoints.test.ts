import { XMLValidator } from 'fast-xml-parser';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import { entries, startTestServer, statuses, type Response, type TestServer } from '../support/server';
import { STORE_KIND } from '../support/stores';

const BODY_LIMIT = 4096;
const MAX_OPERATIONS = 50;

const SEED = `<?xml version="1.0"?>
<flexibee-batch id="seed">
  <user>
    <username>anna.mlada</username>
    <password>correct horse battery staple</password>
    <email>anna.mlada@firma.cz</email>
    <givenName>Anna</givenName>
    <familyName>Mladá</familyName>
    <permissions><manageAll>true</manageAll><createCompany>true</createCompany></permissions>
    <defaultRole>UCETNI</defaultRole>
  </user>
  <user>
    <username>Petr.Novak</username>
    <password hash="sha256" salt="xyz987">af123bd3af123bd3af123bd3af123bd3af123bd3af123bd3af123bd3af123bd3</password>
    <blocked message="left the company">true</blocked>
  </user>
  <user><username>eva.smazana</username><password>another long password</password></user>
  <company><id>moje_firma_s_r_o_</id><name>Moje Firma s.r.o.</name><country>CZ</country><adminUser>anna.mlada</adminUser></company>
  <company><id>skryta_a_s_</id><name>Skrytá &amp; spol. a.s.</name><country>CZ</country><adminUser>anna.mlada</adminUser></company>
  <company><id>skryta_a_s_</id><show>false</show></company>
  <access user="petr.novak" role="UCETNI">moje_firma_s_r_o_</access>
  <access user="eva.smazana">moje_firma_s_r_o_</access>
  <user action="delete"><username>eva.smazana</username></user>
</flexibee-batch>
`;

type Json = Record<string, unknown>;

function json(res: Response): Json {
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  return JSON.parse(res.body) as Json;
}

function expectWellFormedXml(res: Response): void {
  expect(res.headers['content-type']).toMatch(/^application\/xml/);
  expect(XMLValidator.validate(res.body)).toBe(true);
}

function expectXmlEnvelope(res: Response, status: number, message: RegExp): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/xml/);
  // The test server has already validated the body against winstrom-error.xsd.
  expect(res.body).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<winstrom version="1.0"><success>false<\/success><message>[^<]+<\/message><\/winstrom>\n$/);
  expect(res.body).toMatch(message);
}

function expectJsonEnvelope(res: Response, status: number, message: RegExp): void {
  expect(res.status).toBe(status);
  const body = json(res) as { winstrom: { '@version': string; success: boolean; message: string } };
  expect(Object.keys(body)).toEqual(['winstrom']);
  expect(body.winstrom).toEqual({ '@version': '1.0', success: false, message: expect.stringMatching(message) });
}

describe('the read endpoints and the request-level errors of SPEC §3', () => {
  let server: TestServer;
  let seedAnswer: string;

  beforeAll(async () => {
    server = await startTestServer({ bodyLimit: BODY_LIMIT, maxOperations: MAX_OPERATIONS });
    const res = await server.batch(SEED);
    expect(res.status).toBe(200);
    expect(statuses(res.body)).not.toContain('FAILED');
    seedAnswer = res.body;
  });
  afterAll(() => server.close());

  describe('GET /status.json', () => {
    test('when asked without any credentials, then it answers 200 with the store health and the limits', async () => {
      const res = await server.request('GET', '/status.json', { client: null });
      expect(res.status).toBe(200);
      expect(json(res)).toEqual({
        status: 'ok',
        store: { kind: STORE_KIND, ok: true },
        limits: { bodyBytes: BODY_LIMIT, operations: MAX_OPERATIONS },
      });
    });

    test('when asked, then it gives away no data of the store', async () => {
      const res = await server.request('GET', '/status.json', { client: null });
      expect(res.body).not.toMatch(/anna|petr|moje_firma|flexi-admin\.db|\/tmp/i);
    });
  });

  describe('GET /u.json and /u.xml', () => {
    test('when the root principal lists users, then every active user is there and the deleted one is not', async () => {
      const body = json(await server.request('GET', '/u.json')) as { winstrom: { '@version': string; user: Json[] } };
      expect(body.winstrom['@version']).toBe('1.0');
      expect(body.winstrom.user.map((u) => u.username)).toEqual(['anna.mlada', 'Petr.Novak']);
      expect(body.winstrom.user[0]).toMatchObject({ email: 'anna.mlada@firma.cz', givenName: 'Anna', familyName: 'Mladá', blocked: false, userType: 'NORMAL' });
      expect(body.winstrom.user[1]).toMatchObject({ blocked: true });
    });

    test('when users are listed in XML, then the document is well-formed and holds the same users', async () => {
      const res = await server.request('GET', '/u.xml');
      expect(res.status).toBe(200);
      expectWellFormedXml(res);
      expect(res.body.match(/<username>[^<]*<\/username>/g)).toEqual(['<username>anna.mlada</username>', '<username>Petr.Novak</username>']);
      expect(res.body).toContain('<familyName>Mladá</familyName>');
    });

    test('when users are listed, then no password hash or salt appears in either format', async () => {
      for (const path of ['/u.json', '/u.xml', '/u/anna.mlada.json', '/u/petr.novak.xml']) {
        const res = await server.request('GET', path);
        expect(res.status).toBe(200);
        expect(res.body).not.toMatch(/passwordHash|"hash"|<hash>|sha256:|pbkdf2:|xyz987|af123bd3|correct horse/i);
      }
    });
  });

  describe('GET /u/{login}.json and .xml', () => {
    test('when one user is asked for in JSON, then its fields, permissions, block state and access list are there', async () => {
      const body = json(await server.request('GET', '/u/anna.mlada.json')) as { winstrom: { user: Json[] } };
      expect(body.winstrom.user).toHaveLength(1);
      expect(body.winstrom.user[0]).toEqual({
        username: 'anna.mlada',
        email: 'anna.mlada@firma.cz',
        givenName: 'Anna',
        familyName: 'Mladá',
        validUntil: null,
        userType: 'NORMAL',
        blocked: false,
        blockMessage: null,
        lastLoginAt: null,
        licenseGroup: 'root',
        defaultRole: 'UCETNI',
        permissions: {
          manageAll: true,
          createCompany: true,
          deleteCompany: false,
          createUser: false,
          changePassword: false,
          grantPermission: false,
          licenseManagement: false,
        },
        access: [
          { company: 'moje_firma_s_r_o_', role: 'ADMIN' },
          { company: 'skryta_a_s_', role: 'ADMIN' },
        ],
      });
    });

    test('when a blocked user is asked for in XML with another letter case, then it is found with its block message and grants', async () => {
      const res = await server.request('GET', '/u/petr.novak.xml');
      expect(res.status).toBe(200);
      expectWellFormedXml(res);
      expect(res.body).toContain('<username>Petr.Novak</username>');
      expect(res.body).toContain('<blocked>true</blocked>');
      expect(res.body).toContain('<blockMessage>left the company</blockMessage>');
      expect(res.body).toContain('<access><company role="UCETNI">moje_firma_s_r_o_</company></access>');
    });

    test('when a deleted user is asked for, then the answer is 404 in the format of the path', async () => {
      expectJsonEnvelope(await server.request('GET', '/u/eva.smazana.json'), 404, /eva\.smazana/);
      expectXmlEnvelope(await server.request('GET', '/u/eva.smazana.xml'), 404, /eva\.smazana/);
    });

    test('when an unknown user is asked for, then the answer is 404', async () => {
      expectXmlEnvelope(await server.request('GET', '/u/nobody.xml'), 404, /User nobody does not exist/);
    });

    test('when the login has no .json or .xml suffix, then the answer is 404 and says which paths exist', async () => {
      expectXmlEnvelope(await server.request('GET', '/u/anna.mlada'), 404, /\/u\/anna\.mlada\.json or \/u\/anna\.mlada\.xml/);
    });

    test('when the login contains escaped characters, then it is looked up decoded and not found', async () => {
      expectJsonEnvelope(await server.request('GET', '/u/anna%2Fmlada.json'), 404, /anna\/mlada/);
    });
  });

  describe('GET /c.json and /c.xml', () => {
    test('when the root principal lists companies, then hidden ones are included with their state', async () => {
      const body = json(await server.request('GET', '/c.json')) as { winstrom: { company: Json[] } };
      expect(body.winstrom.company).toEqual([
        {
          dbNazev: 'moje_firma_s_r_o_',
          name: 'Moje Firma s.r.o.',
          country: 'CZ',
          regNo: null,
          vatId: null,
          type: 'PODNIKATELE+PU',
          show: true,
          licenseGroup: 'root',
          validUntil: null,
          state: 'ESTABLISHED',
        },
        {
          dbNazev: 'skryta_a_s_',
          name: 'Skrytá & spol. a.s.',
          country: 'CZ',
          regNo: null,
          vatId: null,
          type: 'PODNIKATELE+PU',
          show: false,
          licenseGroup: 'root',
          validUntil: null,
          state: 'DISCONNECTED',
        },
      ]);
    });

    test('when companies are listed in XML, then the document is well-formed and escapes the names', async () => {
      const res = await server.request('GET', '/c.xml');
      expect(res.status).toBe(200);
      expectWellFormedXml(res);
      expect(res.body.match(/<dbNazev>[^<]*<\/dbNazev>/g)).toEqual(['<dbNazev>moje_firma_s_r_o_</dbNazev>', '<dbNazev>skryta_a_s_</dbNazev>']);
      expect(res.body).toContain('<name>Skrytá &amp; spol. a.s.</name>');
      expect(res.body).toContain('<show>false</show><licenseGroup>root</licenseGroup><state>DISCONNECTED</state>');
    });
  });

  describe('GET /admin/batch/{id}', () => {
    test('when a batch was executed, then its journalled result is the answer it got', async () => {
      const res = await server.request('GET', '/admin/batch/seed');
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/xml/);
      expect(res.body).toBe(seedAnswer);
    });

    test('when several batches carried the same id, then the newest result is returned', async () => {
      const first = await server.batch('<flexibee-batch id="abc-123"><user><username>first.one</username></user></flexibee-batch>');
      const second = await server.batch('<flexibee-batch id="abc-123"><user><username>second.one</username></user><user><username>first.one</username></user></flexibee-batch>');
      expect(statuses(first.body)).toEqual(['CREATED']);
      expect(statuses(second.body)).toEqual(['CREATED', 'SKIPPED']);
      const res = await server.request('GET', '/admin/batch/abc-123');
      expect(res.status).toBe(200);
      expect(res.body).toBe(second.body);
      expect(entries(res.body).map((e) => e.id)).toEqual(['second.one', 'first.one']);
    });

    test('when an id contains characters that must be escaped in a URL, then it is still found', async () => {
      const sent = await server.batch('<flexibee-batch id="partner A/2024 #7"><user><username>escaped.id</username></user></flexibee-batch>');
      const res = await server.request('GET', `/admin/batch/${encodeURIComponent('partner A/2024 #7')}`);
      expect(res.status).toBe(200);
      expect(res.body).toBe(sent.body);
    });

    test('when a batch was only a dry run, then nothing was journalled and the answer is 404', async () => {
      const dry = await server.batch('<flexibee-batch id="only-a-dry-run" dry-run="true"><user><username>dry.user</username></user></flexibee-batch>');
      expect(statuses(dry.body)).toEqual(['CREATED']);
      expectXmlEnvelope(await server.request('GET', '/admin/batch/only-a-dry-run'), 404, /only-a-dry-run/);
    });

    test('when no batch with the id was executed, then the answer is 404', async () => {
      expectXmlEnvelope(await server.request('GET', '/admin/batch/never-sent'), 404, /No batch with id never-sent/);
    });

    test('when asked without credentials, then the answer is 401', async () => {
      expectXmlEnvelope(await server.request('GET', '/admin/batch/seed', { client: null }), 401, /Authentication failed/);
    });
  });

  describe('PUT and POST /admin/batch: content type and body', () => {
    const tiny = (id: string): string => `<flexibee-batch id="${id}"><user><username>anna.mlada</username></user></flexibee-batch>`;

    test.each([
      ['no content type (curl -T)', undefined],
      ['application/xml', 'application/xml'],
      ['text/xml with charset UTF-8', 'text/xml; charset=UTF-8'],
      ['application/vnd.flexibee+xml', 'application/vnd.flexibee+xml'],
    ])('when the body comes with %s, then it is applied', async (_label, type) => {
      const res = await server.batch(tiny('typed'), { headers: type ? { 'Content-Type': type } : {} });
      expect(res.status).toBe(200);
      expect(statuses(res.body)).toEqual(['SKIPPED']);
    });

    test('when a batch is sent with POST, then it is applied like PUT', async () => {
      const res = await server.request('POST', '/admin/batch', { body: tiny('posted') });
      expect(res.status).toBe(200);
      expect(statuses(res.body)).toEqual(['SKIPPED']);
    });

    test.each([
      ['application/json', /not application\/json/],
      ['text/plain', /not text\/plain/],
      ['application/x-www-form-urlencoded', /not application\/x-www-form-urlencoded/],
      ['application/xml; charset=ISO-8859-2', /UTF-8, not ISO-8859-2/],
    ])('when the body declares %s, then the answer is 415 and nothing is applied', async (type, message) => {
      const res = await server.batch('<flexibee-batch id="wrong-type"><user><username>typed.wrong</username></user></flexibee-batch>', {
        headers: { 'Content-Type': type },
      });
      expectXmlEnvelope(res, 415, message);
      expect(await server.running.store.findUser('root', 'typed.wrong')).toBeUndefined();
    });

    test.each([
      ['an unclosed element', '<flexibee-batch id="x"><user><username>a</username></flexibee-batch>', /not a valid batch document/],
      ['text that is not XML', 'username=anna', /not a valid batch document/],
      ['an empty body', '', /has no body/],
      ['a wrong root element', '<batch id="x"/>', /flexibee-batch/],
      ['a root without id', '<flexibee-batch><user><username>a</username></user></flexibee-batch>', /id/],
      ['a DOCTYPE', '<!DOCTYPE flexibee-batch SYSTEM "http://127.0.0.1:9/x.dtd"><flexibee-batch id="x"/>', /DOCTYPE/],
      ['bytes that are not UTF-8', Buffer.from([0x3c, 0x61, 0xff, 0xfe, 0x3e]), /not valid UTF-8/],
    ])('when the body is %s, then the answer is 400', async (_label, body, message) => {
      expectXmlEnvelope(await server.request('PUT', '/admin/batch', { body }), 400, message);
    });

    test('when the body is over the configured limit, then the answer is 413 and nothing is applied', async () => {
      const padding = `<!-- ${'x'.repeat(BODY_LIMIT)} -->`;
      const body = `<flexibee-batch id="too-big"><user><username>too.big</username></user>${padding}</flexibee-batch>`;
      expectXmlEnvelope(await server.batch(body), 413, new RegExp(`limit of ${BODY_LIMIT} bytes; nothing was applied`));
      expect(await server.running.store.findUser('root', 'too.big')).toBeUndefined();
      expect(await server.running.store.findLatestJournal('root', 'too-big')).toBeUndefined();
    });

    test('when a body over the limit is streamed without Content-Length, then the answer is 413 too', async () => {
      const pki = server.pki;
      const res = await new Promise<Response>((done, fail) => {
        const req = httpsRequest(
          {
            host: '127.0.0.1',
            servername: 'localhost',
            port: server.port,
            method: 'PUT',
            path: '/admin/batch',
            ca: readFileSync(pki.ca),
            cert: readFileSync(pki.client),
            key: readFileSync(pki.clientKey),
            agent: false,
            headers: { 'Transfer-Encoding': 'chunked' },
          },
          (r) => {
            const chunks: Buffer[] = [];
            r.on('data', (c: Buffer) => chunks.push(c));
            r.on('end', () => done({ status: r.statusCode ?? 0, headers: r.headers, body: Buffer.concat(chunks).toString('utf8') }));
          },
        );
        req.on('error', fail);
        req.write('<flexibee-batch id="streamed">');
        for (let i = 0; i < 8; i++) req.write(`<!-- ${'y'.repeat(BODY_LIMIT / 4)} -->`);
        req.end('</flexibee-batch>');
      });
      expect(res.status).toBe(413);
      expect(res.body).toContain('<success>false</success>');
    });

    test('when a batch has more operations than the limit, then the answer is 413 and nothing is applied', async () => {
      const users = Array.from({ length: MAX_OPERATIONS + 1 }, (_, i) => `<user><username>u${i}</username></user>`).join('');
      expect(users.length).toBeLessThan(BODY_LIMIT);
      expectXmlEnvelope(await server.batch(`<flexibee-batch id="too-many">${users}</flexibee-batch>`), 413, /operations/);
      expect(await server.running.store.findUser('root', 'u0')).toBeUndefined();
    });

    test('when the server has answered request-level errors, then it keeps serving', async () => {
      expect((await server.request('GET', '/status.json')).status).toBe(200);
    });
  });

  describe('unknown paths and methods', () => {
    test.each([
      ['GET', '/nothing-here'],
      ['GET', '/admin/batch'],
      ['DELETE', '/admin/batch'],
      ['PUT', '/u.xml'],
      ['GET', '/U.xml'],
      ['GET', '/u.xml/'],
    ])('when %s %s is asked for, then the answer is 404 in XML', async (method, path) => {
      expectXmlEnvelope(await server.request(method, path), 404, /There is no endpoint/);
    });

    test('when an unknown .json path is asked for, then the 404 is a JSON envelope', async () => {
      expectJsonEnvelope(await server.request('GET', '/nothing-here.json'), 404, /There is no endpoint GET \/nothing-here\.json/);
    });

    test('when an unknown path is asked for without credentials, then the answer is 401, not a map of the server', async () => {
      expectXmlEnvelope(await server.request('GET', '/nothing-here', { client: null }), 401, /Authentication failed/);
    });

    test('when a listing is asked for without credentials in JSON, then the 401 is a JSON envelope', async () => {
      expectJsonEnvelope(await server.request('GET', '/c.json', { client: null }), 401, /Authentication failed/);
    });
  });
});
