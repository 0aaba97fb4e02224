import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { gzipSync } from 'node:zlib';
import { parseXmlDocument } from '../../src/xml/reader';
import { dumpStore, journalSummary } from '../support/stores';
import { entries, startTestServer, statuses, type Response, type TestServer } from '../support/server';

/**
 * SPEC §9 over real HTTPS: every kind of bad input gets a clear answer (400/413/415 with a
 * `<winstrom>` message that names the problem, or a FAILED entry), the server keeps serving
 * (`/status.json` answers right after), and nothing is applied (the store is the same row for
 * row before and after).
 */
const BODY_LIMIT = 4 * 1024 * 1024;
const MAX_OPERATIONS = 50;
const MiB = 1024 * 1024;

const SEED = `<?xml version="1.0" encoding="UTF-8"?>
<flexibee-batch id="bad-input-seed">
  <user>
    <username>anna.mlada</username>
    <password>correct horse battery staple</password>
    <email>anna.mlada@firma.cz</email>
    <givenName>Anna &amp; Co &lt;x&gt;</givenName>
    <familyName>Mladá</familyName>
    <permissions><createUser>true</createUser></permissions>
  </user>
  <user><username>petr.novak</username><blocked message="left">true</blocked></user>
  <company><id>moje_firma_s_r_o_</id><name>Moje Firma s.r.o.</name><adminUser>anna.mlada</adminUser></company>
  <access user="petr.novak" role="UCETNI">moje_firma_s_r_o_</access>
</flexibee-batch>
`;

/** An operation that would change the store if the document around it were applied. */
const CHANGE = '<user><username>should.not.exist</username><givenName>Nobody</givenName></user>';
const batchOf = (id: string, inner = CHANGE, rootAttributes = ''): string => `<flexibee-batch id="${id}"${rootAttributes}>${inner}</flexibee-batch>`;

/** The classic "billion laughs": ten levels of ten references, a few hundred bytes that expand to 3 GB. */
const BILLION_LAUGHS = [
  '<?xml version="1.0"?>',
  '<!DOCTYPE flexibee-batch [',
  '  <!ENTITY lol "lol">',
  ...Array.from({ length: 9 }, (_, i) => `  <!ENTITY lol${i + 1} "${`&lol${i || ''};`.repeat(10)}">`),
  ']>',
  batchOf('laughs', '<user><username>&lol9;</username></user>'),
].join('\n');

/** One 100 KiB entity referenced 10 000 times: no nesting, still a gigabyte once expanded. */
const QUADRATIC_BLOWUP = `<!DOCTYPE flexibee-batch [<!ENTITY a "${'a'.repeat(100 * 1024)}">]>${batchOf('quadratic', `<user><username>q</username><givenName>${'&a;'.repeat(10_000)}</givenName></user>`)}`;

type Body = string | Buffer;

interface Rejection {
  what: string;
  body: Body;
  status: 400 | 413 | 415;
  /** The words the `<winstrom>` message must contain. */
  message: RegExp;
  headers?: Record<string, string>;
}

const utf16be = (text: string): Buffer => {
  const le = Buffer.from(text, 'utf16le');
  for (let i = 0; i + 1 < le.length; i += 2) [le[i], le[i + 1]] = [le[i + 1], le[i]];
  return le;
};

/** Bytes with one broken UTF-8 sequence at a known offset. */
function brokenUtf8(bad: number[]): { body: Buffer; offset: number } {
  const before = '<flexibee-batch id="utf8"><user><username>should.not.exist</username><givenName>Mlad';
  const body = Buffer.concat([Buffer.from(before), Buffer.from(bad), Buffer.from('</givenName></user></flexibee-batch>')]);
  return { body, offset: Buffer.byteLength(before) };
}
const loneFF = brokenUtf8([0xff]);
const overlong = brokenUtf8([0xc0, 0xaf]);
const surrogate = brokenUtf8([0xed, 0xa0, 0x80]);
const latin2 = brokenUtf8([0xe1]); // 'á' in ISO-8859-2 / windows-1250, sent without converting
const cutAtEnd = (() => {
  const body = Buffer.concat([Buffer.from(batchOf('cut')), Buffer.from([0xe2, 0x82])]);
  return { body, offset: body.length - 2 };
})();

const REJECTIONS: Rejection[] = [
  // Malformed XML
  { what: 'an element closed by the wrong tag', body: `<flexibee-batch id="m"><user><username>should.not.exist</username></flexibee-batch>`, status: 400, message: /not a valid batch document: the closing tag <\/flexibee-batch> does not match the open element <user> \(line 1, column \d+\)/ },
  { what: 'a truncated document', body: SEED.slice(0, SEED.indexOf('<familyName>') + 14), status: 400, message: /not a valid batch document: the element <familyName> is never closed: the document ends first \(line 8, column 5\)/ },
  { what: 'a document cut off inside a tag', body: SEED.slice(0, SEED.indexOf('</familyName>') + 5), status: 400, message: /not a valid batch document: the closing tag <\/fam> does not match the open element <familyName>/ },
  { what: 'a document cut off after the last operation', body: batchOf('cut-root').replace('</flexibee-batch>', ''), status: 400, message: /the element <flexibee-batch> is never closed: the document ends first/ },
  { what: 'text that is not XML', body: 'username=anna&password=secret', status: 400, message: /not a valid batch document: it does not start with an element/ },
  { what: 'an empty body', body: '', status: 400, message: /The request has no body; send the batch XML/ },
  { what: 'a body of only whitespace', body: ' \r\n\t\n ', status: 400, message: /not a valid batch document: it is empty or only whitespace/ },
  { what: 'a byte order mark and nothing else', body: '\uFEFF', status: 400, message: /not a valid batch document: it is empty or only whitespace/ },
  { what: 'an attribute without quotes', body: batchOf('x').replace('id="x"', 'id=unquoted'), status: 400, message: /the value of the attribute 'id' of <flexibee-batch> must be in quotes/ },
  { what: 'an attribute without a value', body: batchOf('x').replace('id="x"', 'id="x" atomic'), status: 400, message: /the attribute 'atomic' of <flexibee-batch> has no value/ },
  { what: 'a duplicate attribute on the root', body: batchOf('a', CHANGE, ' id="b"'), status: 400, message: /the attribute 'id' is given twice on <flexibee-batch>/ },
  { what: 'a duplicate attribute on an operation', body: batchOf('dup', '<user action="delete" action="create-update"><username>petr.novak</username></user>'), status: 400, message: /the attribute 'action' is given twice on <user>/ },
  { what: "a '<' inside an attribute value", body: batchOf('a<b'), status: 400, message: /'<' is not allowed in the value of the attribute 'id'; write &lt;/ },
  { what: 'a bare ampersand in text', body: batchOf('amp', '<user><username>should.not.exist</username><givenName>Tom & Jerry</givenName></user>'), status: 400, message: /'&' must be written as &amp;/ },
  { what: 'a NUL character reference (&#0;)', body: batchOf('nul', '<user><username>should.not.exist</username><givenName>a&#0;b</givenName></user>'), status: 400, message: /the character reference &#0; \(U\+0000\) is not an allowed XML character/ },
  { what: 'a hexadecimal NUL character reference (&#x0;)', body: batchOf('nul-hex&#x0;'), status: 400, message: /the character reference &#x0; \(U\+0000\) is not an allowed XML character/ },
  { what: 'a character reference past Unicode (&#x110000;)', body: batchOf('big', '<user><username>should.not.exist</username><givenName>&#x110000;</givenName></user>'), status: 400, message: /&#x110000; \(U\+110000\) is not an allowed XML character/ },
  { what: 'a raw NUL byte', body: batchOf('raw-nul', '<user><username>should.not.exist</username><givenName>a\u0000b</givenName></user>'), status: 400, message: /the character U\+0000 is not allowed in XML \(line 1, column \d+\)/ },
  { what: 'a raw escape control character', body: batchOf('raw-esc', '<user><username>should.not.exist</username><givenName>\u001b[31m</givenName></user>'), status: 400, message: /the character U\+001B is not allowed in XML/ },
  { what: 'an undefined entity (&foo;)', body: batchOf('foo', '<user><username>should.not.exist</username><givenName>&foo;</givenName></user>'), status: 400, message: /the entity &foo; is not defined; only &amp; &lt; &gt; &quot; &apos; and character references are allowed/ },
  { what: 'an HTML entity (&nbsp;) in an attribute', body: batchOf('nbsp&nbsp;'), status: 400, message: /the entity &nbsp; is not defined/ },
  { what: 'text after the root element', body: `${batchOf('after')}trailing words`, status: 400, message: /text is not allowed after the root element/ },
  { what: 'two root elements', body: `${batchOf('one')}${batchOf('two')}`, status: 400, message: /a document has exactly one root element/ },
  { what: 'an XML declaration that is not at the start', body: `\n<?xml version="1.0"?>${batchOf('decl')}`, status: 400, message: /the XML declaration is only allowed at the very start of the document/ },
  { what: 'a malformed XML declaration', body: `<?xml encoding="UTF-8"?>${batchOf('decl')}`, status: 400, message: /the XML declaration is malformed/ },
  { what: 'a comment that is never closed', body: batchOf('comment', `${CHANGE}<!-- forgotten`), status: 400, message: /a comment is not closed with -->/ },
  { what: 'a CDATA section that is never closed', body: batchOf('cdata', '<user><username>should.not.exist</username><givenName><![CDATA[x</givenName></user>'), status: 400, message: /a CDATA section is not closed with \]\]>/ },
  { what: "a '<' that starts no element", body: batchOf('lt', '<user><username>should.not.exist</username><givenName>1 < 2</givenName></user>'), status: 400, message: /'<' must start an element, a comment or a CDATA section/ },
  // Document-level rules of the batch
  { what: 'a wrong root element', body: `<winstrom id="wrong-root">${CHANGE}</winstrom>`, status: 400, message: /The root element must be <flexibee-batch>, not <winstrom>/ },
  { what: 'a root without an id', body: `<flexibee-batch>${CHANGE}</flexibee-batch>`, status: 400, message: /The batch needs an id: <flexibee-batch id="…">/ },
  { what: 'a root with a blank id', body: batchOf('  '), status: 400, message: /The batch needs an id/ },
  { what: 'a root with an unknown attribute', body: batchOf('attr', CHANGE, ' mode="fast"'), status: 400, message: /Unknown attribute 'mode' on <flexibee-batch>; expected id, atomic, dry-run/ },
  { what: '__proto__ as the root element', body: `<__proto__ id="proto">${CHANGE}</__proto__>`, status: 400, message: /The root element must be <flexibee-batch>, not <__proto__>/ },
  { what: '__proto__ as an attribute of the root', body: batchOf('proto-attr', CHANGE, ' __proto__="x"'), status: 400, message: /Unknown attribute '__proto__' on <flexibee-batch>/ },
  { what: 'more operations than the limit', body: batchOf('too-many', Array.from({ length: MAX_OPERATIONS + 1 }, (_, i) => `<user><username>many.${i}</username></user>`).join('')), status: 413, message: new RegExp(`The batch has ${MAX_OPERATIONS + 1} operations; the limit is ${MAX_OPERATIONS}`) },
  { what: 'an element with 65 attributes', body: batchOf('attrs', `<user ${Array.from({ length: 65 }, (_, i) => `a${i}="x"`).join(' ')}><username>should.not.exist</username></user>`), status: 400, message: /the element <user> has more than 64 attributes/ },
  // DOCTYPE, entity bombs and external entities
  { what: 'a billion laughs entity bomb', body: BILLION_LAUGHS, status: 400, message: /DOCTYPE and entity declarations are not allowed in a batch document/ },
  { what: 'a quadratic blowup entity', body: QUADRATIC_BLOWUP, status: 400, message: /DOCTYPE and entity declarations are not allowed/ },
  { what: 'an external entity naming file:///etc/passwd', body: `<?xml version="1.0"?><!DOCTYPE flexibee-batch [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>${batchOf('xxe-file', '<user><username>x</username><givenName>&xxe;</givenName></user>')}`, status: 400, message: /DOCTYPE and entity declarations are not allowed/ },
  { what: 'a DOCTYPE without an internal subset', body: `<!DOCTYPE flexibee-batch>${batchOf('doctype')}`, status: 400, message: /DOCTYPE and entity declarations are not allowed/ },
  { what: 'an ENTITY declaration inside the root', body: batchOf('entity', `<!ENTITY x "y">${CHANGE}`), status: 400, message: /DOCTYPE and entity declarations are not allowed/ },
  { what: 'nesting 10 000 elements deep', body: batchOf('deep', `${'<a>'.repeat(10_000)}${'</a>'.repeat(10_000)}`), status: 400, message: /elements are nested deeper than 32 levels/ },
  { what: 'nesting 10 000 elements deep without closing them', body: `<flexibee-batch id="deep-open">${'<user>'.repeat(10_000)}`, status: 400, message: /elements are nested deeper than 32 levels/ },
  // Encodings
  { what: 'invalid UTF-8 (a lone 0xFF byte)', body: loneFF.body, status: 400, message: new RegExp(`The body is not valid UTF-8 \\(byte 0xFF at offset ${loneFF.offset}\\); send the batch in UTF-8`) },
  { what: "invalid UTF-8 (an overlong encoding of '/')", body: overlong.body, status: 400, message: new RegExp(`not valid UTF-8 \\(byte 0xC0 at offset ${overlong.offset}\\)`) },
  { what: 'invalid UTF-8 (an encoded UTF-16 surrogate)', body: surrogate.body, status: 400, message: new RegExp(`not valid UTF-8 \\(byte 0xED at offset ${surrogate.offset}\\)`) },
  { what: 'invalid UTF-8 (windows-1250 text sent as is)', body: latin2.body, status: 400, message: new RegExp(`not valid UTF-8 \\(byte 0xE1 at offset ${latin2.offset}\\)`) },
  { what: 'invalid UTF-8 (a sequence cut off at the end)', body: cutAtEnd.body, status: 400, message: new RegExp(`not valid UTF-8 \\(byte 0xE2 at offset ${cutAtEnd.offset}\\)`) },
  { what: 'a UTF-16LE body with a byte order mark', body: Buffer.from(`\uFEFF${batchOf('utf16')}`, 'utf16le'), status: 415, message: /The body looks like UTF-16LE; only UTF-8 is accepted/ },
  { what: 'a UTF-16BE body with a byte order mark', body: utf16be(`\uFEFF${batchOf('utf16')}`), status: 415, message: /The body looks like UTF-16BE; only UTF-8 is accepted/ },
  { what: 'a UTF-16LE body without a byte order mark', body: Buffer.from(batchOf('utf16'), 'utf16le'), status: 415, message: /The body looks like UTF-16LE/ },
  { what: 'a UTF-8 body that declares encoding="UTF-16"', body: `<?xml version="1.0" encoding="UTF-16"?>${batchOf('decl-16')}`, status: 415, message: /The document declares encoding="UTF-16"; only UTF-8 is accepted/ },
  { what: 'a body that declares encoding="windows-1250"', body: `<?xml version="1.0" encoding="windows-1250"?>${batchOf('decl-1250')}`, status: 415, message: /declares encoding="windows-1250"; only UTF-8 is accepted/ },
  // Content types and encodings of the request
  { what: 'declared as application/json', body: batchOf('json'), headers: { 'Content-Type': 'application/json' }, status: 415, message: /The body must be XML \(application\/xml or text\/xml\), not application\/json/ },
  { what: 'declared as text/plain', body: batchOf('plain'), headers: { 'Content-Type': 'text/plain' }, status: 415, message: /must be XML .*not text\/plain/ },
  { what: 'declared as a form', body: 'username=should.not.exist', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, status: 415, message: /must be XML .*not application\/x-www-form-urlencoded/ },
  { what: 'declared as multipart/form-data', body: batchOf('multi'), headers: { 'Content-Type': 'multipart/form-data; boundary=x' }, status: 415, message: /must be XML .*not multipart\/form-data/ },
  { what: 'declared as XML in UTF-16', body: batchOf('charset'), headers: { 'Content-Type': 'application/xml; charset=UTF-16' }, status: 415, message: /The body must be UTF-8, not UTF-16/ },
  { what: 'gzip-encoded but not gzip', body: batchOf('gz'), headers: { 'Content-Encoding': 'gzip' }, status: 400, message: /The body is not valid gzip data although Content-Encoding says so/ },
  { what: 'in an unknown content encoding', body: batchOf('compress'), headers: { 'Content-Encoding': 'compress' }, status: 415, message: /Content-Encoding must be identity, gzip, deflate or br, not compress/ },
  { what: 'a gzip bomb that inflates past the body limit', body: gzipSync(Buffer.alloc(BODY_LIMIT * 16, ' ')), headers: { 'Content-Encoding': 'gzip' }, status: 413, message: new RegExp(`larger than the limit of ${BODY_LIMIT} bytes once decompressed`) },
  // Size
  { what: 'over the body limit (with Content-Length)', body: batchOf('big', `${CHANGE}<!-- ${'x'.repeat(BODY_LIMIT)} -->`), status: 413, message: new RegExp(`The body is larger than the limit of ${BODY_LIMIT} bytes; nothing was applied`) },
  { what: 'a text node that takes the body over the limit', body: batchOf('huge-413', `<user><username>should.not.exist</username><givenName>${'x'.repeat(BODY_LIMIT + MiB)}</givenName></user>`), status: 413, message: new RegExp(`larger than the limit of ${BODY_LIMIT} bytes`) },
];

/** A raw TLS connection with the dev client certificate, for byte-level clients. */
function openTls(server: TestServer): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port: server.port,
        ca: readFileSync(server.pki.ca),
        cert: readFileSync(server.pki.client),
        key: readFileSync(server.pki.clientKey),
      },
      () => resolve(socket),
    );
    socket.once('error', reject);
  });
}

interface RawExchange {
  /** Everything the server sent until it closed the connection (or we did). */
  received: string;
  /** Bytes of the request body written before the answer arrived (or the connection closed). */
  bodyBytesSent: number;
  /** Whether the server closed (or reset) the connection. */
  closedByServer: boolean;
  elapsedMs: number;
}

/** The first HTTP answer in `text`: status, headers and body (by Content-Length). */
function firstAnswer(text: string): Response {
  const end = text.indexOf('\r\n\r\n');
  expect(end).toBeGreaterThan(0);
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length'] ?? 0);
  return { status: Number(statusLine.split(' ')[1]), headers, body: Buffer.from(text.slice(end + 4)).subarray(0, length).toString('utf8') };
}

/**
 * Sends `head`, then body pieces from `pieces` every `intervalMs` until an answer arrives,
 * the server closes the connection, or the pieces run out (then it just waits for the server).
 */
async function trickle(server: TestServer, head: string, pieces: Iterable<string>, intervalMs: number, timeoutMs = 90_000): Promise<RawExchange> {
  const started = Date.now();
  const socket = await openTls(server);
  return new Promise((resolve) => {
    let received = '';
    let bodyBytesSent = 0;
    let answered = false;
    let closedByServer = true;
    const iterator = pieces[Symbol.iterator]();
    const timer = setInterval(() => {
      if (answered || socket.destroyed) return;
      const next = iterator.next();
      if (next.done) return;
      bodyBytesSent += Buffer.byteLength(next.value);
      socket.write(next.value);
    }, intervalMs);
    const giveUp = setTimeout(() => {
      closedByServer = false;
      socket.destroy();
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8');
      if (!answered && received.includes('\r\n\r\n')) answered = true;
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve({ received, bodyBytesSent, closedByServer, elapsedMs: Date.now() - started });
    });
    socket.write(head);
  });
}

/** Writes `chunk` again and again as fast as the connection takes it, until an answer arrives or `maxBytes` are sent. */
async function flood(server: TestServer, head: string, chunk: string, maxBytes: number): Promise<RawExchange> {
  const started = Date.now();
  const socket = await openTls(server);
  let received = '';
  let answered = false;
  let closed = false;
  socket.on('data', (c: Buffer) => {
    received += c.toString('utf8');
    const answer = received.indexOf('\r\n\r\n');
    const length = /content-length: (\d+)/i.exec(received);
    if (answer > 0 && length && Buffer.byteLength(received) >= answer + 4 + Number(length[1])) answered = true;
  });
  socket.on('error', () => undefined);
  const gone = new Promise<void>((done) => socket.once('close', () => ((closed = true), done())));
  socket.write(head);
  let bodyBytesSent = 0;
  while (!answered && !closed && bodyBytesSent < maxBytes) {
    bodyBytesSent += Buffer.byteLength(chunk);
    if (!socket.write(chunk)) await Promise.race([new Promise((done) => socket.once('drain', done)), gone]);
    await new Promise((done) => setImmediate(done));
  }
  const sentWhenAnswered = bodyBytesSent;
  const closedByServer = closed;
  socket.end();
  await Promise.race([gone, new Promise((done) => setTimeout(done, 2000))]);
  socket.destroy();
  return { received, bodyBytesSent: sentWhenAnswered, closedByServer, elapsedMs: Date.now() - started };
}

interface StoreState {
  rows: ReturnType<typeof dumpStore>;
  journal: ReturnType<typeof journalSummary>;
}

const stateOf = (server: TestServer): StoreState => ({ rows: dumpStore(server.db), journal: journalSummary(server.db) });

/** The decoded text of the `<message>` of a `<winstrom>` envelope. */
function messageOf(res: Response): string {
  if (String(res.headers['content-type']).startsWith('application/json')) return (JSON.parse(res.body) as { winstrom: { message: string } }).winstrom.message;
  const m = /^<\?xml version="1.0" encoding="UTF-8"\?>\n<winstrom version="1.0"><success>false<\/success><message>([^<]+)<\/message><\/winstrom>\n$/.exec(res.body);
  if (!m) throw new Error(`not a <winstrom> envelope: ${res.body.slice(0, 300)}`);
  return m[1].replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" })[e] as string);
}

function expectEnvelope(res: Response, status: number, message: RegExp): void {
  expect(res.headers['content-type']).toMatch(/^application\/xml/);
  expect({ status: res.status, message: messageOf(res) }).toEqual({ status, message: expect.stringMatching(message) });
}

/** The server answers `/status.json` and the store holds exactly what it held before. */
async function expectServingAndUnchanged(server: TestServer, before: StoreState, journal: 'same journal' | 'one more journal entry'): Promise<void> {
  const status = await server.request('GET', '/status.json', { client: null });
  expect(status.status).toBe(200);
  expect(JSON.parse(status.body)).toMatchObject({ status: 'ok' });
  const after = stateOf(server);
  expect(after.rows).toEqual(before.rows);
  if (journal === 'same journal') expect(after.journal).toEqual(before.journal);
  else expect(after.journal).toHaveLength(before.journal.length + 1);
}

describe('SPEC §9: bad input over HTTPS', () => {
  let server: TestServer;
  let listener: TcpServer;
  let listenerPort = 0;
  const listenerConnections: string[] = [];
  const prototypeNames = Object.getOwnPropertyNames(Object.prototype).sort();

  beforeAll(async () => {
    server = await startTestServer({ bodyLimit: BODY_LIMIT, maxOperations: MAX_OPERATIONS, shutdownTimeoutMs: 2000 });
    const seeded = await server.batch(SEED);
    expect(statuses(seeded.body)).toEqual(['CREATED', 'CREATED', 'CREATED', 'CREATED']);
    // A local listener that an external entity, DTD or XInclude would have to reach: it must receive nothing.
    listener = createTcpServer((socket) => {
      listenerConnections.push(`${socket.remoteAddress}:${socket.remotePort}`);
      socket.destroy();
    });
    await new Promise<void>((done) => listener.listen(0, '127.0.0.1', done));
    listenerPort = (listener.address() as { port: number }).port;
  });

  afterAll(async () => {
    await new Promise<void>((done) => listener.close(() => done()));
    await server.close();
  });

  describe('request-level problems: one clear envelope, nothing applied', () => {
    test.each(REJECTIONS.map((r) => [r.what, r.status, r] as const))('when the body is %s, then the answer is %i with a message that names the problem, and nothing is applied', async (_what, status, rejection) => {
      const before = stateOf(server);
      const res = await server.request('PUT', '/admin/batch', { body: rejection.body, headers: rejection.headers });
      expectEnvelope(res, status, rejection.message);
      expect(res.body).not.toMatch(/root:x:0|internal error/);
      await expectServingAndUnchanged(server, before, 'same journal');
    });

    test.each([
      ['an external entity', (port: number) => `<!DOCTYPE flexibee-batch [<!ENTITY xxe SYSTEM "http://127.0.0.1:${port}/xxe">]>${batchOf('xxe-http', '<user><username>x</username><givenName>&xxe;</givenName></user>')}`],
      ['an external parameter entity', (port: number) => `<!DOCTYPE flexibee-batch [<!ENTITY % remote SYSTEM "http://127.0.0.1:${port}/remote.dtd"> %remote;]>${batchOf('xxe-param')}`],
      ['an external DTD', (port: number) => `<!DOCTYPE flexibee-batch SYSTEM "http://127.0.0.1:${port}/batch.dtd">${batchOf('xxe-dtd')}`],
      ['a public DTD', (port: number) => `<!DOCTYPE flexibee-batch PUBLIC "-//x//y" "http://127.0.0.1:${port}/public.dtd">${batchOf('xxe-public')}`],
    ])('when the body names %s on a local listener, then the answer is 400 and the listener receives nothing', async (_what, body) => {
      const before = stateOf(server);
      const res = await server.request('PUT', '/admin/batch', { body: body(listenerPort) });
      expectEnvelope(res, 400, /DOCTYPE and entity declarations are not allowed in a batch document/);
      await expectServingAndUnchanged(server, before, 'same journal');
      await new Promise((done) => setTimeout(done, 200));
      expect(listenerConnections).toEqual([]);
    });

    test('when the body carries an XInclude or a schema location pointing at a local listener, then nothing is fetched and the elements are not followed', async () => {
      const before = stateOf(server);
      const xinclude = await server.batch(batchOf('xinclude', `<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="http://127.0.0.1:${listenerPort}/include.xml"/>`));
      expect(xinclude.status).toBe(200);
      expect(entries(xinclude.body)).toEqual([{ type: 'UNKNOWN', action: 'CREATE_UPDATE', id: 'xi:include', status: 'FAILED', message: expect.stringMatching(/unknown element <xi:include> in <flexibee-batch>; expected <user>, <company>, <access>/) }]);
      const located = await server.request('PUT', '/admin/batch', {
        body: batchOf('schema', CHANGE, ` xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="urn:x http://127.0.0.1:${listenerPort}/batch.xsd"`),
      });
      expectEnvelope(located, 400, /Unknown attribute 'xsi:schemaLocation' on <flexibee-batch>/);
      await new Promise((done) => setTimeout(done, 200));
      expect(listenerConnections).toEqual([]);
      await expectServingAndUnchanged(server, before, 'one more journal entry');
    });

    test('when a body over the limit is streamed in chunks without Content-Length, then 413 arrives while the client is still sending', async () => {
      const before = stateOf(server);
      const piece = 'x'.repeat(64 * 1024);
      const chunk = `${piece.length.toString(16)}\r\n${piece}\r\n`;
      const head = `PUT /admin/batch HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/xml\r\nTransfer-Encoding: chunked\r\n\r\n`;
      const exchange = await flood(server, head, chunk, 40 * BODY_LIMIT);
      const answer = firstAnswer(exchange.received);
      expectEnvelope(answer, 413, new RegExp(`The body is larger than the limit of ${BODY_LIMIT} bytes; nothing was applied`));
      // The answer did not wait for the end of an (endless) upload.
      expect(exchange.bodyBytesSent).toBeLessThan(40 * BODY_LIMIT);
      await expectServingAndUnchanged(server, before, 'same journal');
    });

    test('when Content-Length announces more than the limit, then 413 arrives before the body is sent', async () => {
      const before = stateOf(server);
      const head = `PUT /admin/batch HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${40 * BODY_LIMIT}\r\n\r\n`;
      const exchange = await flood(server, head, 'y'.repeat(64 * 1024), 40 * BODY_LIMIT);
      expectEnvelope(firstAnswer(exchange.received), 413, new RegExp(`The body is larger than the limit of ${BODY_LIMIT} bytes`));
      expect(exchange.bodyBytesSent).toBeLessThan(40 * BODY_LIMIT);
      await expectServingAndUnchanged(server, before, 'same journal');
    });

    test('when a path holds a malformed %-escape, then the answer is 400 naming it, not 500', async () => {
      for (const path of ['/u/%E0%A4.json', '/admin/batch/%ZZ', '/u/%ZZ.xml']) {
        const res = await server.request('GET', path);
        expect(res.status).toBe(400);
        expect(messageOf(res)).toMatch(/The path contains a malformed %-escape/);
      }
      expect((await server.request('GET', '/status.json')).status).toBe(200);
    });
  });

  describe('problems inside operations: FAILED entries, nothing applied', () => {
    /** `id` undefined: the entry's id is not checked here (see the test on naming below). */
    const failedOnly = async (id: string, inner: string, expected: Array<{ type: string; id?: string; message: RegExp }>, rootAttributes = ''): Promise<void> => {
      const before = stateOf(server);
      const res = await server.batch(batchOf(id, inner, rootAttributes));
      expect(res.status).toBe(200);
      expect(entries(res.body)).toEqual(
        expected.map((e) => ({ type: e.type, action: expect.any(String), id: e.id ?? expect.any(String), status: 'FAILED', message: expect.stringMatching(e.message) })),
      );
      await expectServingAndUnchanged(server, before, 'one more journal entry');
    };

    test('when a field holds a multi-MiB text node under the body limit, then that operation is FAILED naming the field and its length limit', async () => {
      await failedOnly('huge-text', `<user><username>anna.mlada</username><givenName>${'x'.repeat(3 * MiB)}</givenName></user>`, [
        { type: 'USER', id: 'anna.mlada', message: /^<givenName> is longer than 255 characters$/ },
      ]);
    });

    test('when a password, an attribute and a company name hold MiB of text, then each operation is FAILED naming its limit', async () => {
      await failedOnly(
        'huge-fields',
        [
          `<user><username>anna.mlada</username><password>${'p'.repeat(MiB)}</password></user>`,
          `<user><username>petr.novak</username><blocked message="${'m'.repeat(MiB)}">true</blocked></user>`,
          `<company><id>moje_firma_s_r_o_</id><name>${'n'.repeat(MiB)}</name></company>`,
        ].join(''),
        [
          { type: 'USER', id: 'anna.mlada', message: /^<password> is longer than 1024 characters$/ },
          { type: 'USER', id: 'petr.novak', message: /^the block message is longer than 255 characters$/ },
          { type: 'COMPANY', id: 'moje_firma_s_r_o_', message: /^<name> is longer than 255 characters$/ },
        ],
      );
    });

    test('when operations contain unknown elements, then each is FAILED naming the element and the expected ones', async () => {
      await failedOnly(
        'unknown',
        '<user><username>anna.mlada</username><shoeSize>42</shoeSize></user><widget><id>w</id></widget><company><id>moje_firma_s_r_o_</id><Name>X</Name></company>',
        [
          { type: 'USER', id: 'anna.mlada', message: /unknown element <shoeSize> in <user>; expected <username>, <password>, .*<userType>/ },
          { type: 'UNKNOWN', id: 'widget', message: /unknown element <widget> in <flexibee-batch>; expected <user>, <company>, <access>/ },
          { type: 'COMPANY', message: /unknown element <Name> in <company>.*did you mean <name>\?/ },
        ],
      );
    });

    test('when fields hold invalid values, then each operation is FAILED saying what is wrong', async () => {
      await failedOnly(
        'invalid-values',
        [
          '<user><username>bad name!</username></user>',
          '<user><username>anna.mlada</username><email>not-an-address</email></user>',
          '<user><username>anna.mlada</username><permissions><createUser>maybe</createUser></permissions></user>',
          '<user><username>anna.mlada</username><userType>GOD</userType></user>',
          '<company><id>Not_Valid</id></company>',
          '<company><id>moje_firma_s_r_o_</id><country>DE</country></company>',
          '<access user="petr.novak" role="EMPEROR">moje_firma_s_r_o_</access>',
        ].join(''),
        [
          { type: 'USER', id: '', message: /username 'bad name!' is not valid/ },
          { type: 'USER', id: 'anna.mlada', message: /email 'not-an-address' is not an e-mail address/ },
          { type: 'USER', id: 'anna.mlada', message: /<createUser> must be true or false, not 'maybe'/ },
          { type: 'USER', id: 'anna.mlada', message: /unknown userType 'GOD'/ },
          { type: 'COMPANY', id: '', message: /company id 'Not_Valid' is not valid/ },
          { type: 'COMPANY', id: 'moje_firma_s_r_o_', message: /unknown country 'DE'; expected CZ or SK/ },
          { type: 'ACCESS_LIST', id: 'petr.novak@moje_firma_s_r_o_', message: /EMPEROR/ },
        ],
      );
    });

    // Fails until src/batch/parse.ts reads the username, company id and access user/company
    // before it checks attributes and child elements (see the report of issue #4).
    test('when an operation with an unknown attribute or element names its entity, then its FAILED entry carries that id', async () => {
      await failedOnly(
        'naming',
        [
          '<user action="create-update" colour="red"><username>anna.mlada</username></user>',
          '<company><id>moje_firma_s_r_o_</id><Name>X</Name></company>',
          '<company colour="red"><id>moje_firma_s_r_o_</id></company>',
          '<access user="petr.novak" colour="red">moje_firma_s_r_o_</access>',
        ].join(''),
        [
          { type: 'USER', id: 'anna.mlada', message: /unknown attribute 'colour' on <user>/ },
          { type: 'COMPANY', id: 'moje_firma_s_r_o_', message: /unknown element <Name> in <company>/ },
          { type: 'COMPANY', id: 'moje_firma_s_r_o_', message: /unknown attribute 'colour' on <company>/ },
          { type: 'ACCESS_LIST', id: 'petr.novak@moje_firma_s_r_o_', message: /unknown attribute 'colour' on <access>/ },
        ],
      );
    });

    test('when __proto__, constructor and prototype are element and attribute names, then they are reported as unknown and Object.prototype is not polluted', async () => {
      await failedOnly(
        'proto',
        [
          '<__proto__><polluted>yes</polluted></__proto__>',
          '<constructor><prototype><polluted>yes</polluted></prototype></constructor>',
          '<user><username>anna.mlada</username><__proto__><polluted>yes</polluted></__proto__></user>',
          '<user><username>anna.mlada</username><permissions><__proto__>true</__proto__></permissions></user>',
          '<user __proto__="polluted"><username>anna.mlada</username></user>',
          '<company constructor="x"><id>moje_firma_s_r_o_</id></company>',
          '<access user="petr.novak" prototype="ADMIN">moje_firma_s_r_o_</access>',
          '<user><username>anna.mlada</username><password hash="sha256" __proto__="x">ab</password></user>',
        ].join(''),
        [
          { type: 'UNKNOWN', id: '__proto__', message: /unknown element <__proto__> in <flexibee-batch>/ },
          { type: 'UNKNOWN', id: 'constructor', message: /unknown element <constructor> in <flexibee-batch>/ },
          { type: 'USER', id: 'anna.mlada', message: /unknown element <__proto__> in <user>/ },
          { type: 'USER', id: 'anna.mlada', message: /unknown element <__proto__> in <permissions>/ },
          { type: 'USER', message: /unknown attribute '__proto__' on <user>/ },
          { type: 'COMPANY', message: /unknown attribute 'constructor' on <company>/ },
          { type: 'ACCESS_LIST', message: /unknown attribute 'prototype' on <access>/ },
          { type: 'USER', id: 'anna.mlada', message: /unknown attribute '__proto__' on <password>/ },
        ],
      );
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeNames);
      expect(Object.getPrototypeOf({})).toBe(Object.prototype);
      // The listings still work, and show nothing of it.
      const users = await server.request('GET', '/u.json');
      expect(users.status).toBe(200);
      expect(users.body).not.toContain('polluted');
    });
  });

  describe('unusual but well-formed documents: read as XML says', () => {
    const skippedOnly = async (body: Body, expected: string[], headers?: Record<string, string>): Promise<string> => {
      const before = stateOf(server);
      const res = await server.request('PUT', '/admin/batch', { body, headers });
      expect(res.status).toBe(200);
      expect(statuses(res.body)).toEqual(expected);
      await expectServingAndUnchanged(server, before, 'one more journal entry');
      return res.body;
    };

    test('when the body starts with a UTF-8 byte order mark, then it is read as the batch after it', async () => {
      await skippedOnly(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(SEED)]), ['SKIPPED', 'SKIPPED', 'SKIPPED', 'SKIPPED']);
    });

    test('when a field is a CDATA section, then its content is taken literally (the stored value, so SKIPPED)', async () => {
      await skippedOnly(batchOf('cdata', '<user><username>anna.mlada</username><givenName><![CDATA[Anna & Co <x>]]></givenName></user>'), ['SKIPPED']);
    });

    test('when a CDATA section holds a different value in a dry run, then it would be UPDATED and nothing is kept', async () => {
      const before = stateOf(server);
      const res = await server.batch(batchOf('cdata-dry', '<user><username>anna.mlada</username><givenName><![CDATA[<b>&amp;</b>]]></givenName></user>', ' dry-run="true"'));
      expect(statuses(res.body)).toEqual(['UPDATED']);
      await expectServingAndUnchanged(server, before, 'same journal');
    });

    test('when the document has a full XML declaration, comments, processing instructions and CRLF line ends, then it is read normally', async () => {
      const body = `<?xml version="1.0" encoding="utf-8" standalone="yes"?>\r\n<!-- sent by a partner -->\r\n<?partner-tool v2?>\r\n${batchOf('misc', '\r\n  <user>\r\n    <username>anna.mlada</username><!-- c --><givenName>Anna &#38; Co &#x3C;x&gt;</givenName>\r\n  </user>\r\n')}\r\n<!-- end -->\r\n`;
      await skippedOnly(body, ['SKIPPED'], { 'Content-Type': 'text/xml; charset="utf-8"' });
    });

    test('when the body is gzip-encoded, then it is decompressed and applied like plain XML', async () => {
      await skippedOnly(gzipSync(SEED), ['SKIPPED', 'SKIPPED', 'SKIPPED', 'SKIPPED'], { 'Content-Encoding': 'gzip' });
    });
  });

  describe('answers about any path are well-formed (issue #9, point 8)', () => {
    /** The envelope's message as a strict XML reader sees it; server.request has validated it with xmllint already. */
    const readMessage = (res: Response): string => {
      const message = parseXmlDocument(res.body).children.find((c) => c.name === 'message');
      if (!message) throw new Error(`no <message> in ${res.body}`);
      return message.text;
    };

    test.each([
      ['/admin/batch/%00', 'No batch with id \uFFFD has been executed in your scope.'],
      ['/u/a%01.xml', 'User a\uFFFD does not exist.'],
      ['/u/%EF%BF%BE.xml', 'User \uFFFD does not exist.'],
      ['/u/%EF%BF%BF%0B%1F.xml', 'User \uFFFD\uFFFD\uFFFD does not exist.'],
    ])('when GET %s decodes to a character XML forbids, then the 404 envelope is well-formed XML with U+FFFD in its place', async (path, message) => {
      const res = await server.request('GET', path);
      expect(res.status).toBe(404);
      expect(res.headers['content-type']).toMatch(/^application\/xml/);
      expect(readMessage(res)).toBe(message);
    });

    test('when a login names a user with U+0000 in it, then it is refused as an unknown name (401), not a 500 (PostgreSQL text cannot hold U+0000)', async () => {
      for (const body of [JSON.stringify({ username: 'anna.mlada\u0000', password: 'x' }), JSON.stringify({ username: '\u0000', password: '' })]) {
        const res = await server.request('POST', '/login-logout/login.json', { client: null, headers: { 'content-type': 'application/json' }, body });
        expect(res.status).toBe(401);
      }
      const form = await server.request('POST', '/login-logout/login.xml', { client: null, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=anna%00&password=x' });
      expect(form.status).toBe(401);
      expect(readMessage(form)).not.toBe('');
    });

    /** UTF-8 bytes of a code point, surrogates included (CESU style: what no valid UTF-8 contains). */
    const utf8Of = (cp: number): number[] =>
      cp < 0x80 ? [cp]
      : cp < 0x800 ? [0xc0 | (cp >> 6), 0x80 | (cp & 0x3f)]
      : cp < 0x10000 ? [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)]
      : [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
    const FORBIDDEN_AND_MARKUP = [0x0, 0x1, 0x8, 0x9, 0xa, 0xb, 0xc, 0xd, 0x1f, 0x22, 0x26, 0x27, 0x2f, 0x3c, 0x3e, 0x7f, 0x85, 0xd800, 0xdfff, 0xfffd, 0xfffe, 0xffff, 0x1f600, 0x10ffff];
    /** A path segment of any code points, each %-encoded byte by byte. */
    const segment = fc
      .array(fc.oneof(fc.constantFrom(...FORBIDDEN_AND_MARKUP), fc.integer({ min: 0, max: 0x10ffff })), { minLength: 1, maxLength: 8 })
      .map((cps) => cps.flatMap(utf8Of).map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''));

    test('when paths hold any characters, then every answer is well-formed XML (or JSON for .json) and none is 500', async () => {
      await fc.assert(
        fc.asyncProperty(segment, async (seg) => {
          for (const path of [`/admin/batch/${seg}`, `/u/${seg}.xml`, `/u/${seg}.json`, `/u/${seg}`, `/${seg}.xml`]) {
            const res = await server.request('GET', path);
            expect([400, 404]).toContain(res.status);
            if (path.endsWith('.json')) expect(() => JSON.parse(res.body)).not.toThrow();
            else expect(readMessage(res)).not.toBe('');
          }
        }),
        { seed: Number(process.env.FC_SEED ?? 20_240_604), numRuns: 25 },
      );
    });
  });

  test('when all of the above has been sent, then the server logged no unexpected error and still serves batches', async () => {
    expect(server.logs.filter((line) => /"level":"error"/.test(line))).toEqual([]);
    expect(server.logs.filter((line) => /"status":500/.test(line))).toEqual([]);
    const res = await server.batch(SEED);
    expect(statuses(res.body)).toEqual(['SKIPPED', 'SKIPPED', 'SKIPPED', 'SKIPPED']);
  });
});

describe('SPEC §9: slow clients are cut off by the request timeout', () => {
  const REQUEST_TIMEOUT_MS = 1500;
  let server: TestServer;
  let before: StoreState;
  /** Started together in beforeAll, so the suite waits for one timeout, not one per client. */
  let clients: Record<string, Promise<RawExchange>>;

  const put = (headers: string): string => `PUT /admin/batch HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/xml\r\n${headers}\r\n`;
  const body = batchOf('slow', CHANGE);
  function* bytes(text: string): Generator<string> {
    for (const ch of text) yield ch;
  }
  function* chunks(text: string): Generator<string> {
    for (const ch of text) yield `1\r\n${ch}\r\n`;
    yield '0\r\n\r\n';
  }

  beforeAll(async () => {
    server = await startTestServer({ requestTimeoutMs: REQUEST_TIMEOUT_MS, shutdownTimeoutMs: 1000 });
    await server.batch(SEED);
    before = stateOf(server);
    const second = 1000;
    clients = {
      oneBytePerSecond: trickle(server, put(`Content-Length: ${Buffer.byteLength(body)}\r\n`), bytes(body), second),
      stalledBody: trickle(server, `${put(`Content-Length: ${Buffer.byteLength(body)}\r\n`)}${body.slice(0, 40)}`, [], second),
      stalledHeaders: trickle(server, 'PUT /admin/batch HTTP/1.1\r\nHost: localhost\r\nContent-Le', [], second),
      slowChunks: trickle(server, put('Transfer-Encoding: chunked\r\n'), chunks(body), second),
      silent: trickle(server, '', [], second),
    };
  }, 30_000);

  afterAll(() => server.close());

  const expectCutOff = (exchange: RawExchange): void => {
    expect(exchange.closedByServer).toBe(true);
    expect(exchange.received).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(exchange.received).toContain('<message>The request did not arrive within the request timeout; nothing was applied.</message>');
    expect(exchange.elapsedMs).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
  };

  test('when a client sends the headers and then the body one byte per second, then the server answers 408 and closes the connection before the body is complete', async () => {
    const exchange = await clients.oneBytePerSecond;
    expectCutOff(exchange);
    expect(exchange.bodyBytesSent).toBeLessThan(Buffer.byteLength(body));
  }, 120_000);

  test('when a client stalls in the middle of the body, then the server answers 408 and closes the connection', async () => {
    expectCutOff(await clients.stalledBody);
  }, 120_000);

  test('when a client stalls in the middle of the headers, then the server answers 408 and closes the connection', async () => {
    expectCutOff(await clients.stalledHeaders);
  }, 120_000);

  test('when a client sends a chunked body one byte per second, then the server answers 408 and closes the connection', async () => {
    const exchange = await clients.slowChunks;
    expectCutOff(exchange);
    expect(exchange.bodyBytesSent).toBeLessThan(Buffer.byteLength(body) * 6);
  }, 120_000);

  test('when a client completes the TLS handshake and sends nothing, then the server closes the connection', async () => {
    expectCutOff(await clients.silent);
  }, 120_000);

  test('when the slow clients have been cut off, then the server answers /status.json and nothing was applied', async () => {
    await Promise.all(Object.values(clients));
    await expectServingAndUnchanged(server, before, 'same journal');
    expect((await server.batch(SEED)).status).toBe(200);
    expect(server.logs.filter((line) => /"level":"error"|"status":500/.test(line))).toEqual([]);
  }, 120_000);
});
