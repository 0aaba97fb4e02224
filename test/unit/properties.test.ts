/**
 * Property-based tests of the pure core (issue #4, point 2), with fast-check:
 *
 * (a) the parser: well-formed, structurally random, mutated and fully random documents never make
 *     `parseBatch` throw anything but its FlexiError 400/413; what it accepts the planner plans
 *     without throwing and the answer renders as well-formed XML;
 * (b) the planner against the reference model of SPEC §4/§6 (test/support/batch-model.ts):
 *     sequences of generated batches — as full-rights principals and impersonating stored users,
 *     atomic, dry-run — give the model's answer and leave the model's state;
 * (c) idempotency: re-sending a batch leaves the store exactly as the first send did, under the
 *     rule of test/integration/idempotency.test.ts — the precondition is that SPEC §4 itself makes
 *     the batch idempotent (run twice in the model, the second run changes nothing: forward
 *     references fail it), and the second answer is SKIPPED/FAILED except for entries another
 *     operation of the batch writes too;
 * (d) password verification (issue 9, point 4): any stored string and any password give true or
 *     false, never a throw — a form that cannot be parsed (an odd-length pbkdf2 digest, a digest
 *     of the wrong length, iterations out of bounds) simply does not match;
 * (e) the writers: whatever text reaches an answer (a decoded path, quoted input, stored fields),
 *     the result document, the error envelope and the listings are well-formed XML that reads
 *     back as that text, with only the characters XML 1.0 forbids replaced by U+FFFD.
 *
 * Every property runs with a fixed seed (FC_SEED overrides it; FC_RUNS=10 runs ten times as many
 * cases); fast-check prints the seed and the path of a counterexample when a property fails, so
 * `FC_SEED=… npx jest …` replays it.
 */
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { XMLValidator } from 'fast-xml-parser';
import { emptyChangeSet } from '../../src/domain/changes';
import type { BatchDocument } from '../../src/batch/operations';
import { parseBatch } from '../../src/batch/parse';
import { planBatch, snapshotRequest, type Plan, type Snapshot } from '../../src/batch/plan';
import { renderResult } from '../../src/xml/result';
import { escapeXml, escapeXmlAttribute } from '../../src/xml/writer';
import { parseXmlDocument, type XmlElement } from '../../src/xml/reader';
import {
  checkLoginPassword,
  DIGEST_HEX_DIGITS,
  hashPassword,
  HASH_ALGORITHMS,
  MAX_PBKDF2_ITERATIONS,
  verifyPassword,
  verifyPasswordSync,
  type HashPolicy,
} from '../../src/domain/passwords';
import { noPermissions, PERMISSION_NAMES, type Permissions } from '../../src/domain/permissions';
import type { CompanyRecord } from '../../src/domain/companies';
import type { Principal } from '../../src/domain/principals';
import type { UserRecord } from '../../src/domain/users';
import { FlexiError } from '../../src/errors';
import { errorDocument } from '../../src/xml/winstrom';
import { renderCompanies, renderUser } from '../../src/xml/views';
import type { UserView } from '../../src/store/store';
import { generateBatch } from '../support/batch-generator';
import { cloneState, contested, emptyState, idempotentBySpec, recordsAsModel, runModel, stateData, verifiesAs, type ModelState } from '../support/batch-model';
import { MemoryStore } from '../support/memory-store';
import { company, snapshot, user, withEventBodies } from '../support/snapshots';

const SEED = Number(process.env.FC_SEED ?? 20_240_604);
/** FC_RUNS multiplies every run count, for a longer hunt than the default suite affords. */
const runs = (numRuns: number): fc.Parameters<unknown> => ({
  seed: SEED,
  numRuns: Math.ceil(numRuns * Number(process.env.FC_RUNS ?? 1)),
  endOnFailure: true,
  // FC_PATH (with FC_SEED) replays the one counterexample a failure printed.
  ...(process.env.FC_PATH ? { path: process.env.FC_PATH } : {}),
});

const ROOT: Principal = { kind: 'certificate', name: 'dev-client', scope: 'root' };
const as = (actingUser: string): Principal => ({ ...ROOT, actingUser });

/** Characters XML 1.0 allows in a document. */
const NOT_XML_CHAR = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

// ── (a) the parser ──────────────────────────────────────────────────────────────────────

const NAMES = [
  'flexibee-batch', 'user', 'company', 'access', 'licenseGroup', 'username', 'Benutzername', 'password', 'email', 'givenName',
  'Geschenkname', 'familyName', 'Familienname', 'permissions', 'manageAll', 'createUser', 'licenseMgmt', 'blocked', 'userType',
  'defaultRole', 'id', 'name', 'country', 'regNo', 'vatId', 'type', 'adminUser', 'show', 'User', 'USERNAME', 'x:user', 'Ä', 'a',
  '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', 'isPrototypeOf',
];
const ATTRIBUTES = ['id', 'action', 'role', 'user', 'hash', 'salt', 'iterations', 'message', 'atomic', 'dry-run', 'xmlns', 'xmlns:x', '__proto__', 'constructor', 'toString'];
const VALUES = [
  '', 'true', 'false', '1', 'yes', 'delete', 'create-update', 'ADMIN', 'UZIVATEL', 'GESPERRT', 'anna.mlada', 'Petr.Novak', 'eva', 'moje_firma_s_r_o_',
  'beta', 'Moje Firma s.r.o.', 'CZ', 'sk', 'PODNIKATELE', 'NEZISKOVE', 'CZ12345678', 'SK2020123456', 'sha256', 'pbkdf2', 'md5', '1000', '0',
  'abc123', '0123456789abcdef0123456789abcdef', 'anna@firma.cz', 'NORMAL', 'READ_ONLY', '&amp;', '&#xC4;nna', '&#128512;', '&lt;x&gt;', '&quot;',
  ' padded ', '😀', '\u00A0', '\u202E', 'a'.repeat(300), '__proto__',
];
const escapeText = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
/** An attribute value or text, already written as XML. */
const valueArb = fc.oneof(fc.constantFrom(...VALUES), fc.string({ maxLength: 12 }).map(escapeText));
const textArb = fc.oneof(valueArb, fc.constantFrom('<![CDATA[a < b]]>', '<![CDATA[]]>', '<!-- note -->', '<?pi x?>'));

interface Tree {
  name: string;
  attributes: Array<[string, string]>;
  content: string | Tree[];
}

const { tree } = fc.letrec<{ tree: Tree }>((tie) => ({
  tree: fc.record({
    name: fc.constantFrom(...NAMES),
    attributes: fc.uniqueArray(fc.tuple(fc.constantFrom(...ATTRIBUTES), valueArb), { selector: ([n]) => n, maxLength: 3 }),
    content: fc.oneof({ depthSize: 'small' }, textArb, fc.array(tie('tree'), { maxLength: 4 })),
  }),
}));

function writeTree(t: Tree): string {
  const attributes = t.attributes.map(([n, v]) => ` ${n}="${v}"`).join('');
  const inner = typeof t.content === 'string' ? t.content : t.content.map(writeTree).join('');
  return inner === '' ? `<${t.name}${attributes}/>` : `<${t.name}${attributes}>${inner}</${t.name}>`;
}

/** Documents of random structure: the right root mostly, with random children, names, attributes and values. */
const treeDocument = fc
  .record({
    root: fc.oneof({ weight: 5, arbitrary: fc.constant('flexibee-batch') }, fc.constantFrom(...NAMES)),
    attributes: fc.oneof(
      { weight: 3, arbitrary: fc.uniqueArray(fc.tuple(fc.constantFrom('atomic', 'dry-run'), fc.constantFrom('true', 'false')), { selector: ([n]) => n }) },
      fc.uniqueArray(fc.tuple(fc.constantFrom('id', 'atomic', 'dry-run', 'mode', 'xmlns', '__proto__'), valueArb), { selector: ([n]) => n, maxLength: 3 }),
    ),
    id: fc.option(fc.oneof({ weight: 3, arbitrary: fc.constant('abc-123') }, fc.constantFrom(' ', 'x'.repeat(201), '&#x9;tab', '&#x1F600;'), fc.string({ maxLength: 20 }).map(escapeText)), { freq: 10 }),
    children: fc.array(tree, { maxLength: 8 }),
    declaration: fc.boolean(),
  })
  .map(({ root, attributes, id, children, declaration }) => {
    const attrs = [...(id === null ? [] : [['id', id] as [string, string]]), ...attributes.filter(([n]) => n !== 'id')];
    return writeTree({ name: root, attributes: attrs, content: children }).replace(/^/, declaration ? '<?xml version="1.0" encoding="UTF-8"?>\n' : '');
  });

const generated = fc.integer({ min: 1, max: 0x7fffffff }).map((seed) => generateBatch(seed));

/** Fragments that break a document in the ways clients (and attackers) do. */
const NASTY = [
  '<!DOCTYPE flexibee-batch [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>', '<!DOCTYPE x SYSTEM "file:///etc/passwd">', '<!ENTITY x "y">',
  '<! doctype x>', '<!doctype html>', '&xxe;', '&lol9;', '&amp', '&', '&#0;', '&#x0;', '&#xD800;', '&#1114112;', '&#x110000;', '&#xFFFE;', '&#;', '&#x;',
  ']]>', '<![CDATA[', '<![CDATA[x]]>', '<?xml version="1.0"?>', '<?pi x?>', '<!--', '-->', '<!-- c -->', '\u0000', '\u0001', '\u0008', '\u000B', '\u001F',
  '\u007F', '\uFFFE', '\uFFFF', '\uD800', '\uDFFF', '\uDBFF\uDFFF', '😀', 'Ä', '\u202E', '\u200B', '\r\n', '\t', '<__proto__>x</__proto__>',
  '<constructor/>', '<prototype>1</prototype>', '<hasOwnProperty/>', '<toString>a</toString>', '<user><__proto__><polluted>yes</polluted></__proto__></user>',
  '<user><username>a</username><constructor><prototype><polluted>yes</polluted></prototype></constructor></user>', ' __proto__="x"', ' constructor="y"',
  ' id="dup"', ' id="a" id="b"', ' xmlns:x="urn:x"', '<x:user/>', '<user action="delete">', '</user>', '</flexibee-batch>', '<flexibee-batch id="x">',
  '<flexibee-batch>', '"', "'", '<', '>', '/>', '=', '</>', '<>', '<a b>', '<a b=c>', '<1a/>', '<-a/>', '<a\u0000/>', `<a>${'x'.repeat(70_000)}</a>`,
  `${'<a>'.repeat(40)}${'</a>'.repeat(40)}`, '<a>'.repeat(200), `${'<a>'.repeat(10_000)}${'</a>'.repeat(10_000)}`, '<access role="ADMIN">moje_firma_s_r_o_</access>',
  '<user><username>anna.mlada</username><password hash="pbkdf2" salt="s" iterations="10000000">00</password></user>',
];

type Mutation =
  | { kind: 'delete' | 'duplicate'; at: number; length: number }
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'truncate'; at: number }
  | { kind: 'swap-tags'; a: number; b: number }
  | { kind: 'rename-tag'; at: number; name: string }
  | { kind: 'rename-all'; from: number; name: string }
  | { kind: 'insert-markup'; at: number; text: string };

const insertion = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...NASTY) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 8 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom('<', '>', '/', '!', '?', '&', ';', '#', '[', ']', '"', "'", '=', ' ', 'a', '-'), maxLength: 8 }) },
);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constantFrom('delete' as const, 'duplicate' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 40 }) }),
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: insertion }) },
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('swap-tags' as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ kind: fc.constant('rename-tag' as const), at: fc.nat(), name: fc.constantFrom(...NAMES, 'flexibee-batch-result', 'winstrom') }),
  // Mutations that keep the document well-formed, so that the parser's readers and the planner get to work on them.
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('rename-all' as const), from: fc.nat(), name: fc.constantFrom(...NAMES) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('insert-markup' as const), at: fc.nat(), text: fc.oneof(fc.constantFrom(...NASTY), tree.map(writeTree)) }) },
);

/** Where the tag names of a document are: [start, end) of each name after `<` or `</`. */
function tagNames(doc: string): Array<[number, number]> {
  return [...doc.matchAll(/<\/?([A-Za-z_:][-\w.:]*)/g)].map((m) => {
    const start = (m.index ?? 0) + m[0].length - m[1].length;
    return [start, start + m[1].length];
  });
}

function mutate(doc: string, m: Mutation): string {
  const at = 'at' in m ? m.at % (doc.length + 1) : 0;
  switch (m.kind) {
    case 'delete':
      return doc.slice(0, at) + doc.slice(at + m.length);
    case 'duplicate':
      return doc.slice(0, at + m.length) + doc.slice(at, at + m.length) + doc.slice(at + m.length);
    case 'insert':
      return doc.slice(0, at) + m.text + doc.slice(at);
    case 'truncate':
      return doc.slice(0, at);
    case 'swap-tags': {
      const tags = tagNames(doc);
      if (tags.length < 2) return doc;
      const [x, y] = [tags[m.a % tags.length], tags[m.b % tags.length]].sort((p, q) => p[0] - q[0]);
      if (x[0] === y[0]) return doc;
      return doc.slice(0, x[0]) + doc.slice(y[0], y[1]) + doc.slice(x[1], y[0]) + doc.slice(x[0], x[1]) + doc.slice(y[1]);
    }
    case 'rename-all': {
      const tags = tagNames(doc);
      if (tags.length === 0) return doc;
      const [start, end] = tags[m.from % tags.length];
      const from = doc.slice(start, end);
      return doc.replace(new RegExp(`(</?)${from.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=[\\s/>])`, 'g'), `$1${m.name}`);
    }
    case 'insert-markup': {
      // At the start or right after a '>': between elements, where markup is well-formed.
      const places = [...doc.matchAll(/>/g)].map((x) => (x.index ?? 0) + 1);
      if (!doc.startsWith('<?xml')) places.push(0);
      const at = places[m.at % places.length] ?? 0;
      return doc.slice(0, at) + m.text + doc.slice(at);
    }
    case 'rename-tag': {
      const tags = tagNames(doc);
      if (tags.length === 0) return doc;
      const [start, end] = tags[m.at % tags.length];
      return doc.slice(0, start) + m.name + doc.slice(end);
    }
  }
}

const mutated = fc
  .tuple(fc.oneof(generated, treeDocument), fc.oneof({ weight: 3, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 1 }) }, fc.array(mutation, { minLength: 2, maxLength: 4 })))
  .map(([doc, mutations]) => mutations.reduce(mutate, doc));

const randomText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ unit: 'grapheme', maxLength: 100 }),
  fc.string({ unit: fc.constantFrom(...NASTY.filter((n) => n.length < 100), '<flexibee-batch id="r">', '<user>', '<username>', 'a', ' '), maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 200 }).map((inner) => `<flexibee-batch id="r">${inner}</flexibee-batch>`),
);

/** A store the parsed batches are planned against: the pool users (one of them the actor), companies and grants. */
const PLANNING_SNAPSHOT: Snapshot = snapshot({
  users: [
    user('anna.mlada', { givenName: 'Anna', permissions: { ...noPermissions(), createUser: true, grantPermission: true }, defaultRole: 'UCETNI' }),
    user('petr.novak', { passwordHash: 'sha256:s:00', blocked: true, blockMessage: 'x' }),
    user('eva', { userType: 'READ_ONLY', deleted: true }),
  ],
  companies: [
    company('moje_firma_s_r_o_', { name: 'Moje Firma s.r.o.' }),
    company('beta', { name: 'Beta a.s.', country: 'SK', regNo: '007', vatId: 'SK2020123456', type: 'PODNIKATELIA+PU', show: false }),
  ],
  access: [
    { userKey: 'anna.mlada', companyId: 'moje_firma_s_r_o_', role: 'ADMIN' },
    { userKey: 'petr.novak', companyId: 'beta', role: 'UCETNI' },
  ],
});

/** The parser's contract: a BatchDocument, or FlexiError 400/413 (415 for a declared non-UTF-8 encoding) with a message an XML envelope can carry. */
function parseOrRefuse(body: string, maxOperations: number): BatchDocument | undefined {
  try {
    return parseBatch(body, { maxOperations });
  } catch (err) {
    if (!(err instanceof FlexiError)) throw new Error(`parseBatch threw ${String(err)} (not a FlexiError) for ${JSON.stringify(body.slice(0, 2000))}`);
    // 415 only for a document that declares an encoding other than UTF-8 (README: a non-UTF-8 body is 415).
    const typed = err.status === 400 || err.status === 413 || (err.status === 415 && /encoding=/.test(body));
    if (!typed) throw new Error(`parseBatch threw status ${err.status}: ${err.message}`);
    if (!err.message || NOT_XML_CHAR.test(err.message)) throw new Error(`the error message cannot be sent in XML: ${JSON.stringify(err.message)}`);
    return undefined;
  }
}

/** What the parser accepts, the planner plans without throwing, and the answer is well-formed XML. */
function planAndRender(doc: BatchDocument, maxOperations: number): void {
  if (doc.operations.length > maxOperations) throw new Error(`${doc.operations.length} operations were accepted with the limit ${maxOperations}`);
  if (!doc.id || doc.id !== doc.id.trim()) throw new Error(`the batch id ${JSON.stringify(doc.id)} was accepted`);
  for (const principal of [ROOT, as('anna.mlada')]) {
    const plan = withEventBodies(planBatch(doc, PLANNING_SNAPSHOT, { principal, passwordMatches: () => false }));
    if (plan.results.length !== doc.operations.length) throw new Error(`${plan.results.length} results for ${doc.operations.length} operations`);
    for (const r of plan.results) if (r.status === 'FAILED' && !r.message?.trim()) throw new Error(`a FAILED result has no message: ${JSON.stringify(r)}`);
    const xml = renderResult({ id: doc.id, dryRun: doc.dryRun }, plan.results);
    const valid = XMLValidator.validate(xml);
    if (valid !== true) throw new Error(`the answer is not well-formed XML (${valid.err.msg}):\n${xml}`);
    const bad = NOT_XML_CHAR.exec(xml);
    if (bad) throw new Error(`the answer contains the character U+${bad[0].codePointAt(0)?.toString(16)}, which XML does not allow:\n${JSON.stringify(xml)}`);
  }
}

function expectUnpolluted(): void {
  const probe = {} as Record<string, unknown>;
  expect(probe.polluted).toBeUndefined();
  expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted')).toBe(false);
}

describe('parseBatch on any input (SPEC §4, §9)', () => {
  /** How many documents a property saw the parser accept: the planner side must get real work too. */
  let accepted = 0;
  beforeEach(() => {
    accepted = 0;
  });
  const property = (body: string, maxOperations: number): void => {
    const doc = parseOrRefuse(body, maxOperations);
    if (doc) {
      accepted++;
      planAndRender(doc, maxOperations);
    }
    expectUnpolluted();
  };

  test('when a generated batch is well-formed, then it is parsed without a request-level error and planned', () => {
    fc.assert(
      fc.property(generated, (body) => {
        const doc = parseBatch(body, { maxOperations: 1000 });
        planAndRender(doc, 1000);
      }),
      runs(300),
    );
  });

  test('when a document has random structure, names, attributes and values, then the parser answers a document or a 400/413 FlexiError', () => {
    fc.assert(fc.property(treeDocument, fc.integer({ min: 0, max: 10 }), property), runs(500));
    expect(accepted).toBeGreaterThan(100);
  });

  test('when a document is mutated (bytes deleted, duplicated or inserted, tags swapped or renamed, DOCTYPE, entities, ]]>, control characters, deep nesting, reserved names), then the parser answers a document or a 400/413 FlexiError', () => {
    fc.assert(fc.property(mutated, fc.integer({ min: 1, max: 30 }), property), runs(500));
    expect(accepted).toBeGreaterThan(50);
  });

  test('when the body is a fully random string, then the parser answers a document or a 400/413 FlexiError', () => {
    fc.assert(fc.property(randomText, fc.integer({ min: 0, max: 5 }), property), runs(500));
  });

  test('when a document declares a DOCTYPE or an entity anywhere, then it is refused with 400 whatever else it is', () => {
    const declaration = fc.constantFrom('<!DOCTYPE flexibee-batch>', '<!DOCTYPE x [<!ENTITY a "b">]>', '<!ENTITY a SYSTEM "file:///etc/passwd">', '<!doctype x>', '<! DOCTYPE x>');
    fc.assert(
      fc.property(fc.oneof(generated, treeDocument), fc.nat(), declaration, (body, at, text) => {
        // Between markup (at the start or after a '>'), not inside a comment, where it would be only text.
        const places = [0, ...[...body.matchAll(/>/g)].map((m) => (m.index ?? 0) + 1)];
        const where = places[at % places.length];
        expect(() => parseBatch(body.slice(0, where) + text + body.slice(where), { maxOperations: 1000 })).toThrow(
          expect.objectContaining({ status: 400 }) as unknown as Error,
        );
      }),
      runs(200),
    );
  });

  test('when a well-formed batch has more operations than the limit, then it is refused with 413 and otherwise accepted', () => {
    fc.assert(
      fc.property(generated, fc.integer({ min: 0, max: 40 }), (body, limit) => {
        const count = parseBatch(body, { maxOperations: 1000 }).operations.length;
        if (count > limit) expect(() => parseBatch(body, { maxOperations: limit })).toThrow(expect.objectContaining({ status: 413 }) as unknown as Error);
        else expect(parseBatch(body, { maxOperations: limit }).operations).toHaveLength(count);
      }),
      runs(200),
    );
  });
});

// ── (b) and (c): the planner against the model ──────────────────────────────────────────

/** Who sends a batch: full rights, or a stored user (a pool user the batches also change, or one they never name). */
const ACTORS = [undefined, 'boss', 'eva', 'Anna.Mlada'] as const;
type Actor = (typeof ACTORS)[number];

const permissionsArb: fc.Arbitrary<Permissions> = fc
  .tuple(...PERMISSION_NAMES.map(() => fc.boolean()))
  .map((flags) => Object.fromEntries(PERMISSION_NAMES.map((p, i) => [p, flags[i]])) as Permissions);

/** A starting store, itself created by a batch as root: the actors with random permissions, and companies boss may or may not run. */
const setupArb = fc
  .record({ boss: permissionsArb, eva: permissionsArb, anna: permissionsArb, bossRunsMoje: fc.boolean(), bossRunsBeta: fc.boolean(), withCompanies: fc.boolean() })
  .map(({ boss, eva, anna, bossRunsMoje, bossRunsBeta, withCompanies }) => {
    const perms = (p: Permissions): string => `<permissions>${PERMISSION_NAMES.map((n) => `<${n}>${p[n]}</${n}>`).join('')}</permissions>`;
    const companies = withCompanies
      ? `<company><id>moje_firma_s_r_o_</id><name>Moje Firma s.r.o.</name><adminUser>${bossRunsMoje ? 'boss' : 'anna.mlada'}</adminUser></company>
         <company><id>beta</id><name>Beta a.s.</name><adminUser>${bossRunsBeta ? 'boss' : 'eva'}</adminUser></company>
         <access user="boss" role="UCETNI">moje_firma_s_r_o_</access><access user="eva" role="ADMIN">moje_firma_s_r_o_</access>`
      : '';
    return `<flexibee-batch id="setup">
      <user><username>boss</username><password>boss-pw</password>${perms(boss)}</user>
      <user><username>eva</username>${perms(eva)}</user>
      <user><username>anna.mlada</username><password>pw-one</password>${perms(anna)}</user>
      ${companies}
    </flexibee-batch>`;
  });

const stepArb = fc.record({
  seed: fc.integer({ min: 1, max: 0x7fffffff }),
  actor: fc.constantFrom<Actor>(...ACTORS),
  atomic: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, fc.boolean()),
  dryRun: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, fc.constant(true)),
  resend: fc.boolean(),
});

interface Step {
  seed: number;
  actor: Actor;
  atomic: boolean | undefined;
  dryRun: boolean;
  resend: boolean;
}

const principalOf = (actor: Actor): Principal => (actor === undefined ? ROOT : as(actor));

/** SPEC §2: an impersonated user that is unknown, deleted or blocked gets 403 for the whole request. */
function mayAuthenticate(store: MemoryStore, actor: Actor): boolean {
  if (actor === undefined) return true;
  const u: UserRecord | undefined = store.user(actor.toLowerCase());
  return u !== undefined && !u.deleted && !u.blocked;
}

interface World {
  store: MemoryStore;
  model: ModelState;
}

/** Deep equality, checked cheaply; when it fails, jest's diff and the batches that led there. */
function same(actual: unknown, expected: unknown, where: string): void {
  if (isDeepStrictEqual(actual, expected)) return;
  try {
    expect(actual).toEqual(expected);
  } catch (err) {
    (err as Error).message += `\n\nafter these batches:\n${where}`;
    throw err;
  }
  expect(actual).toStrictEqual(expected);
}

/** The planner's passwordMatches, remembered across sends (the executor precomputes it off the event loop). */
const passwordMatches = verifiesAs;

/** One send: the planner on the store, the model on its state; both must agree. Returns the plan. */
function send(world: World, body: string, actor: Actor, context: string[]): Plan {
  const doc = parseBatch(body, { maxOperations: 1000 });
  const principal = principalOf(actor);
  const snapshot = world.store.load(snapshotRequest(doc, principal));
  const ctx = { principal, passwordMatches };
  const plan = withEventBodies(planBatch(doc, snapshot, ctx));
  const expected = runModel(doc, world.model, actor);
  const where = `${context.join('\n')}\n--- this send, as ${actor ?? 'root'}:\n${body}`;

  // Pure: the same input plans the same way again (the snapshot is frozen, so it was not touched either).
  same(withEventBodies(planBatch(doc, snapshot, ctx)), plan, where);
  same(plan.results.map((r) => ({ id: r.id, status: r.status })), expected.results, where);
  for (const r of plan.results) if (r.status === 'FAILED' && !r.message?.trim()) same(r, { ...r, message: 'a reason' }, where);
  if (doc.atomic && plan.results.some((r) => r.status === 'FAILED')) {
    for (const r of plan.results) if (r.status !== 'FAILED') same(r, { ...r, status: 'SKIPPED', message: 'rolled back' }, where);
    same(plan.changes, emptyChangeSet(), where);
  }
  // The change set is net: it names no user exactly as the snapshot has it.
  for (const u of plan.changes.users) {
    const unchanged = u.newPassword === undefined && snapshot.users.some((s) => isDeepStrictEqual(s, u));
    if (unchanged) same(u, 'a user that differs from the snapshot', where);
  }

  if (!doc.dryRun) world.store.apply(plan.changes);
  world.model = expected.state;
  same(recordsAsModel(world.store.records(), world.model), stateData(world.model), where);
  return plan;
}

describe('planBatch against the reference model (SPEC §4, §5.3, §6)', () => {
  test('when random sequences of batches are sent as root or as stored users, atomic or dry-run, then every answer and every state are the model\'s', () => {
    fc.assert(
      fc.property(setupArb, fc.array(stepArb, { minLength: 1, maxLength: 5 }), (setup, steps: Step[]) => {
        const world: World = { store: new MemoryStore(), model: emptyState() };
        const context = [`--- setup:\n${setup}`];
        send(world, setup, undefined, context);
        for (const step of steps) {
          if (!mayAuthenticate(world.store, step.actor)) continue;
          const body = generateBatch(step.seed, { atomic: step.atomic, dryRun: step.dryRun });
          send(world, body, step.actor, context);
          context.push(`--- sent as ${step.actor ?? 'root'}:\n${body}`);
          if (step.resend && mayAuthenticate(world.store, step.actor)) {
            send(world, body, step.actor, context);
            context.push('--- and sent again');
          }
        }
      }),
      runs(300),
    );
  });

  test('when the acting user is blocked, then the model lets it change nothing (the model itself is sane)', () => {
    const doc = parseBatch('<flexibee-batch id="m"><user><username>carol</username></user></flexibee-batch>', { maxOperations: 10 });
    const start = runModel(parseBatch('<flexibee-batch id="s"><user><username>boss</username><permissions><createUser>true</createUser></permissions></user></flexibee-batch>', { maxOperations: 10 }), emptyState()).state;
    expect(runModel(doc, start, 'boss').results).toEqual([{ id: 'carol', status: 'CREATED' }]);
    const blocked = cloneState(start);
    blocked.users.set('boss', { ...(blocked.users.get('boss') as NonNullable<ReturnType<typeof blocked.users.get>>), blocked: true });
    expect(runModel(doc, blocked, 'boss').results).toEqual([{ id: 'carol', status: 'FAILED' }]);
  });

  // Found by the property above: the planner let an actor that had blocked itself unblock itself (own fields need no permission).
  test('when the acting user blocks itself, then later in the batch it cannot unblock or otherwise change itself either', () => {
    const store = new MemoryStore();
    const world: World = { store, model: emptyState() };
    send(world, '<flexibee-batch id="s"><user><username>boss</username><permissions><createUser>true</createUser></permissions></user></flexibee-batch>', undefined, []);
    const plan = send(
      world,
      `<flexibee-batch id="b">
        <user><username>boss</username><blocked message="going away">true</blocked></user>
        <user><username>boss</username><blocked>false</blocked></user>
        <user><username>boss</username><givenName>Still Here</givenName></user>
        <user><username>boss</username><blocked message="going away">true</blocked></user>
      </flexibee-batch>`,
      'boss',
      [],
    );
    expect(plan.results.map((r) => [r.status, r.message])).toEqual([
      ['UPDATED', undefined],
      ['FAILED', "permission denied: the acting user 'boss' is blocked"],
      ['FAILED', "permission denied: the acting user 'boss' is blocked"],
      // Nothing to change: SKIPPED whatever the permissions.
      ['SKIPPED', undefined],
    ]);
    expect(store.user('boss')).toMatchObject({ blocked: true, blockMessage: 'going away', givenName: null });
  });
});

describe('re-sending a batch to the planner (SPEC §5.2)', () => {
  test('when a batch SPEC §4 makes idempotent is sent twice, then the store is exactly as after the first send and the second answer adds nothing the batch does not redo itself', () => {
    let held = 0;
    let excused = 0;
    fc.assert(
      fc.property(setupArb, fc.array(stepArb, { minLength: 1, maxLength: 3 }), stepArb, (setup, before: Step[], last: Step) => {
        const world: World = { store: new MemoryStore(), model: emptyState() };
        const context = [`--- setup:\n${setup}`];
        send(world, setup, undefined, context);
        for (const step of before) {
          if (!mayAuthenticate(world.store, step.actor)) continue;
          const body = generateBatch(step.seed, { atomic: step.atomic });
          send(world, body, step.actor, context);
          context.push(`--- sent as ${step.actor ?? 'root'}:\n${body}`);
        }
        if (!mayAuthenticate(world.store, last.actor)) return;
        const body = generateBatch(last.seed, { atomic: last.atomic });
        const doc = parseBatch(body, { maxOperations: 1000 });
        const byModel = idempotentBySpec(doc, world.model, last.actor);
        send(world, body, last.actor, context);
        const afterFirst = world.store.records();
        context.push(`--- sent once as ${last.actor ?? 'root'}:\n${body}`);
        // The first send may have blocked or deleted the actor: the re-send is then refused as a whole (403).
        if (!mayAuthenticate(world.store, last.actor)) return;
        const second = send(world, body, last.actor, context);
        if (!byModel) {
          excused++;
          return;
        }
        held++;
        const where = context.join('\n');
        same(world.store.records(), afterFirst, where);
        const ids = second.results.map((r) => r.id);
        same(
          second.results.filter((r, i) => r.status !== 'SKIPPED' && r.status !== 'FAILED' && !contested(doc, ids, i)),
          [],
          where,
        );
      }),
      runs(300),
    );
    // The rule must bite: most generated batches are idempotent by the specification.
    expect(held).toBeGreaterThan(2 * excused);
  });
});

// ── (d) password verification ───────────────────────────────────────────────────────────

const hexDigits = (min: number, max: number): fc.Arbitrary<string> =>
  fc.array(fc.constantFrom(...'0123456789abcdefABCDEF'), { minLength: min, maxLength: max }).map((d) => d.join(''));

/** Iteration counts in and out of bounds; the valid ones small, so that a property stays fast. */
const iterationCounts = fc.oneof(
  fc.integer({ min: 1, max: 200 }).map(String),
  fc.constantFrom('0', '-1', '01', '1e3', ' 5', '5 ', '0x10', '', 'NaN', 'Infinity', '1.5', String(MAX_PBKDF2_ITERATIONS + 1), '10000000', '9'.repeat(30)),
);

/** Stored forms as a store might hold them: right, nearly right (the lengths of other algorithms, odd lengths) and wrong. */
const storedForms = fc.oneof(
  fc.tuple(fc.constantFrom(...HASH_ALGORITHMS, 'SHA256', 'bcrypt', ''), fc.string({ maxLength: 12 }), fc.constantFrom(...Object.values(DIGEST_HEX_DIGITS)), fc.integer({ min: -1, max: 1 }))
    .chain(([alg, salt, digits, off]) => hexDigits(Math.max(0, digits + off), Math.max(0, digits + off)).map((hex) => `${alg}:${salt}:${hex}`)),
  fc.tuple(iterationCounts, fc.string({ maxLength: 12 }), fc.oneof(hexDigits(64, 64), hexDigits(0, 300))).map(([n, salt, hex]) => `pbkdf2:${n}:${salt}:${hex}`),
  fc.tuple(fc.constantFrom(...HASH_ALGORITHMS), fc.string({ maxLength: 40 })).map(([alg, rest]) => `${alg}:${rest}`),
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 80 }),
);

describe('password verification on any stored form (SPEC §4.3; issue 9, point 4)', () => {
  const policy: HashPolicy = { algorithm: 'sha256', pbkdf2Iterations: 1 };

  test('when any stored string is verified against any password, then the answer is true or false and nothing throws', async () => {
    await fc.assert(
      fc.asyncProperty(storedForms, fc.string({ unit: 'binary', maxLength: 40 }), async (stored, password) => {
        expect(typeof verifyPasswordSync(stored, password)).toBe('boolean');
        expect(typeof (await verifyPassword(stored, password))).toBe('boolean');
        const login = await checkLoginPassword(stored, password, 50, policy);
        expect(typeof login.matches).toBe('boolean');
        expect(login.pbkdf2Iterations).toBeGreaterThanOrEqual(50);
      }),
      runs(2000),
    );
  });

  test('when a password is hashed in any algorithm, then its stored form verifies it and no other password', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...HASH_ALGORITHMS), fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 }), async (algorithm, password, other) => {
        const stored = await hashPassword(password, { algorithm, pbkdf2Iterations: 10 });
        expect(await verifyPassword(stored, password)).toBe(true);
        expect(verifyPasswordSync(stored, password)).toBe(true);
        expect(await verifyPassword(stored, other)).toBe(other === password);
      }),
      runs(300),
    );
  });
});

// ── (e) the writers ─────────────────────────────────────────────────────────────────────

/** What every writer must turn a text into: the same text, U+FFFD for what XML 1.0 forbids. */
const xmlSafe = (text: string): string => [...text].map((ch) => (NOT_XML_CHAR.test(ch) ? '\uFFFD' : ch)).join('');

/** Any text, weighted towards what breaks XML: forbidden characters, lone surrogates, markup, line ends, whitespace. */
const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({
    unit: fc.constantFrom('\u0000', '\u0001', '\u0008', '\u000b', '\u000c', '\u001f', '\ufffe', '\uffff', '\ud800', '\udfff', '\ud83d\ude00', '\t', '\n', '\r', ' ', '&', '<', '>', '"', "'", ']]>', '&amp;', 'a', 'é'),
    maxLength: 20,
  }),
);

/** The strict reader (it accepts exactly what xmllint accepts, test/unit/xml.test.ts) on one answer. */
function readAnswer(xml: string): XmlElement {
  const bad = NOT_XML_CHAR.exec(xml);
  if (bad) throw new Error(`the answer contains U+${bad[0].codePointAt(0)?.toString(16)}, which XML does not allow:\n${JSON.stringify(xml)}`);
  return parseXmlDocument(xml);
}

const child = (element: XmlElement, name: string): XmlElement => {
  const found = element.children.find((c) => c.name === name);
  if (!found) throw new Error(`<${element.name}> has no <${name}>`);
  return found;
};

describe('the XML writers on any text (issue #9, point 8)', () => {
  test('when any text is written as element content and as an attribute value, then it reads back exactly, but for forbidden characters as U+FFFD', () => {
    fc.assert(
      fc.property(anyText, (text) => {
        // Brackets keep the reader's trimming of element text away from the text's own ends.
        const doc = readAnswer(`<t a="${escapeXmlAttribute(text)}" b='${escapeXmlAttribute(text)}'>[${escapeXml(text)}]</t>`);
        expect(doc.attributes.get('a')).toBe(xmlSafe(text));
        expect(doc.attributes.get('b')).toBe(xmlSafe(text));
        expect(doc.text).toBe(`[${xmlSafe(text)}]`);
      }),
      runs(1000),
    );
  });

  test('when an error message holds any text, then the envelope is well-formed and carries the message', () => {
    fc.assert(
      fc.property(anyText, (text) => {
        const message = `There is no endpoint GET /x/${text}.`;
        expect(child(readAnswer(errorDocument(message, 'xml')), 'message').text).toBe(xmlSafe(message).trim());
        expect((JSON.parse(errorDocument(message, 'json')) as { winstrom: { message: string } }).winstrom.message).toBe(message);
      }),
      runs(300),
    );
  });

  test('when a result carries any batch id, entity ids and messages, then the result document is well-formed and carries them', () => {
    fc.assert(
      fc.property(anyText, fc.array(fc.tuple(anyText, fc.option(anyText, { nil: undefined })), { maxLength: 5 }), (id, items) => {
        const results = items.map(([entityId, message]) => ({ type: 'USER' as const, action: 'CREATE_UPDATE' as const, id: entityId, status: 'FAILED' as const, message }));
        const doc = readAnswer(renderResult({ id }, results));
        expect(doc.attributes.get('id')).toBe(xmlSafe(id));
        const entries = doc.children.filter((c) => c.name === 'entry');
        expect(entries.map((e) => e.attributes.get('id'))).toEqual(items.map(([entityId]) => xmlSafe(entityId)));
        expect(entries.map((e) => e.children.find((c) => c.name === 'message')?.text)).toEqual(items.map(([, m]) => (m === undefined ? undefined : xmlSafe(m).trim())));
      }),
      runs(300),
    );
  });

  test('when stored users and companies hold any text, then their listings are well-formed', () => {
    fc.assert(
      fc.property(anyText, anyText, (text, other) => {
        const user: UserView = {
          username: text,
          email: other,
          givenName: text,
          familyName: null,
          permissions: noPermissions(),
          defaultRole: null,
          blocked: true,
          blockMessage: other,
          userType: 'NORMAL',
          deleted: false,
          licenseGroup: text,
          validUntil: null,
          access: [{ company: other, role: 'UZIVATEL' }],
        };
        const company: CompanyRecord = { id: text, name: other, country: 'CZ', regNo: null, vatId: text, type: other, show: true, licenseGroup: text, validUntil: null };
        const shown = child(readAnswer(renderUser(user, 'xml')), 'user');
        expect(child(shown, 'blockMessage').text).toBe(xmlSafe(other).trim());
        expect(child(child(readAnswer(renderCompanies([company], 'xml')), 'company'), 'name').text).toBe(xmlSafe(other).trim());
      }),
      runs(300),
    );
  });
});
