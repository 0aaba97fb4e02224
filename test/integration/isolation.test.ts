/**
 * SPEC §7 isolation (issue 11, point 2), over HTTPS on the real store: a principal scoped to a
 * license group neither sees, changes, grants into, deletes nor detects anything outside its
 * scope. fast-check builds random trees of groups (depth 1–4) with users, companies and grants
 * spread over them (also across groups), principals bound to random groups (partner
 * certificates registered with a scope, a certificate or the server password acting as a user
 * through X-FlexiBee-Authorization, sessions logged in to a tenant) and batches sent by them, so
 * that journal entries lie in several scopes. Each run checks, against the reference model of
 * test/support/scope-model.ts:
 *
 * - every listing (`/u.json`, `/c.json`, `/g.json`, also narrowed with `?group=`), every user's
 *   access list and tenants, and every journal entry a principal reads are exactly the model's;
 * - for an object outside the scope — a user, company or group of a sibling subtree, of a group
 *   above the scope or of root, deleted users too — every endpoint (`/u/{login}`,
 *   `/u/{login}/tenants`, `/g/{id}`, `?group=` on `/u`, `/c` and `/g`, `/admin/batch/{id}`,
 *   X-FlexiBee-Authorization, a login's tenant) and every batch form naming it answers byte for
 *   byte what it answers for an id that exists nowhere, but for the id itself;
 * - the one exception, SPEC §7's global ids: creating a username, company id or group id taken
 *   outside the scope is FAILED "… X is not available" in exactly those words wherever it is
 *   taken, a company id derived from a name skips ids taken anywhere — and a principal that may
 *   not create one at all gets its "permission denied" as for a free id, so only a principal that
 *   could create the id learns that it is taken;
 * - the probes change nothing: the store is dumped before and after, and the batches that must
 *   change nothing are also sent for real.
 *
 * One server and store per jest project; each run puts its objects under ids with a prefix of its
 * own, so earlier runs are simply more groups outside every scope. Fixed seed (FC_SEED overrides
 * it, FC_RUNS multiplies the run count, FC_PATH replays the counterexample a failure printed).
 */
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { isDeepStrictEqual } from 'node:util';
import { issueCertificate, type IssuedCertificate } from '../../src/pki/dev-pki';
import { fingerprintOfCertificate } from '../../src/pki/fingerprint';
import { basic, SERVER_PASSWORD, SERVER_USER, writeServerAuth } from '../support/auth';
import { entries, startTestServer, type TestServer } from '../support/server';
import { dumpStore, queryRows, STORE_KIND } from '../support/stores';
import { derivedCompanyId, keyOf, ROOT, ScopeModel, type ModelUser, type UserType, type Viewer } from '../support/scope-model';

const SEED = Number(process.env.FC_SEED ?? 20_250_711);
const NUM_RUNS = Math.ceil((STORE_KIND === 'postgres' ? 30 : 40) * Number(process.env.FC_RUNS ?? 1));
/** At most this many objects of each kind outside a scope are probed per principal and run. */
const PROBES_PER_KIND = 3;

const PERMISSIONS = ['manageAll', 'createCompany', 'deleteCompany', 'createUser', 'changePassword', 'grantPermission', 'licenseManagement'] as const;
const ROLES = ['ADMIN', 'UCETNI', 'UZIVATEL', 'SKLADNIK'] as const;
const AS = 'X-FlexiBee-Authorization';

// ── HTTPS with keep-alive: thousands of probes, one TLS handshake per identity ──────────────

interface Tls {
  cert: string;
  key: string;
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Headers that differ from one answer to the next whatever was asked. */
const VOLATILE_HEADERS = new Set(['date', 'content-length', 'connection', 'keep-alive']);

function stableHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers)
      .filter(([name]) => !VOLATILE_HEADERS.has(name))
      .map(([name, value]) => [name, Array.isArray(value) ? value.join(', ') : String(value)]),
  );
}

class Client {
  private readonly agents = new Map<string, Agent>();

  constructor(
    private readonly port: number,
    private readonly ca: string,
  ) {}

  private agentOf(tls: Tls | null): Agent {
    const id = tls?.cert ?? '';
    let agent = this.agents.get(id);
    if (!agent) this.agents.set(id, (agent = new Agent({ keepAlive: true, maxSockets: 1, ca: this.ca, ...(tls ?? {}) })));
    return agent;
  }

  async call(tls: Tls | null, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
    try {
      return await this.once(tls, method, path, headers, body);
    } catch (err) {
      // The server closed an idle keep-alive connection just as it was reused: nothing was received, send again.
      if ((err as { reused?: boolean }).reused) return this.once(tls, method, path, headers, body);
      throw err;
    }
  }

  private once(tls: Tls | null, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        { host: '127.0.0.1', servername: 'localhost', port: this.port, method, path, headers, agent: this.agentOf(tls), ca: this.ca, ...(tls ?? {}) },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: stableHeaders(res.headers), body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => reject(Object.assign(err, { reused: req.reusedSocket && err.code === 'ECONNRESET' })));
      req.end(body);
    });
  }

  close(): void {
    for (const agent of this.agents.values()) agent.destroy();
  }
}

// ── the generated world ─────────────────────────────────────────────────────────────────

const weighted = (oneIn: number): fc.Arbitrary<boolean> => fc.integer({ min: 1, max: oneIn }).map((n) => n === 1);

const specArb = fc.record({
  /** parent: an index into the earlier groups that are less than four deep, or root. */
  groups: fc.array(fc.record({ parent: fc.nat(), seats: fc.boolean() }), { minLength: 2, maxLength: 6 }),
  /** group: n % (groups + 1) - 1, so -1 is root. */
  users: fc.array(
    fc.record({
      group: fc.nat(),
      everything: fc.boolean(),
      permissions: fc.subarray([...PERMISSIONS]),
      userType: fc.constantFrom<UserType>('NORMAL', 'REST_API', 'READ_ONLY'),
      deleted: weighted(5),
      blocked: weighted(6),
      upper: weighted(3),
    }),
    { minLength: 2, maxLength: 7 },
  ),
  companies: fc.array(fc.record({ group: fc.nat(), admin: fc.nat(), hidden: weighted(4) }), { minLength: 1, maxLength: 6 }),
  grants: fc.array(fc.record({ user: fc.nat(), company: fc.nat(), role: fc.constantFrom(...ROLES) }), { maxLength: 10 }),
  principals: fc.array(
    fc.record({ kind: fc.constantFrom('certificate', 'impersonation', 'password', 'session'), group: fc.nat(), user: fc.nat(), tenant: fc.nat() }),
    { minLength: 1, maxLength: 3 },
  ),
  /** Journalled batches: which principal sends one, under which of three shared batch ids. */
  sends: fc.array(fc.record({ principal: fc.nat(), batch: fc.nat({ max: 2 }) }), { maxLength: 4 }),
  picks: fc.array(fc.nat(), { minLength: 8, maxLength: 8 }),
  flipCase: fc.boolean(),
});
type Spec = typeof specArb extends fc.Arbitrary<infer T> ? T : never;

interface Principal {
  label: string;
  viewer: Viewer;
  tls: Tls | null;
  headers: Record<string, string>;
  batchPath: string;
  kind: 'certificate' | 'impersonation' | 'session';
  /** A session's user, to try a login to another tenant. */
  login?: { username: string; password: string };
}

interface Run {
  p: string;
  spec: Spec;
  model: ScopeModel;
  principals: Principal[];
  /** Batch ids whose journal entries the probes read. */
  batchIds: string[];
  realSends: number;
}

let server: TestServer;
let client: Client;
let devClient: Tls;
let partners: IssuedCertificate[];
let runCount = 0;

beforeAll(async () => {
  server = await startTestServer({ serverAuth: writeServerAuth() });
  client = new Client(server.port, readFileSync(server.pki.ca, 'utf8'));
  devClient = { cert: readFileSync(server.pki.client, 'utf8'), key: readFileSync(server.pki.clientKey, 'utf8') };
  // Self-signed partner certificates: the registry is what is trusted (SPEC §2); each run binds them to its groups.
  partners = [0, 1, 2].map((n) => issueCertificate({ commonName: `isolation partner ${n}`, kind: 'client' }));
});

afterAll(async () => {
  client?.close();
  await server?.close();
});

const range = (n: number): number[] => [...Array(n).keys()];
const flip = (text: string): string => [...text].map((ch) => (ch === ch.toLowerCase() ? ch.toUpperCase() : ch.toLowerCase())).join('');

/** Up to `n` elements of `list`, chosen by the run's picks. */
function pick<T>(run: Run, list: readonly T[], n: number, salt: number): T[] {
  if (list.length <= n) return [...list];
  const start = run.spec.picks[salt % run.spec.picks.length] % list.length;
  return range(n).map((i) => list[(start + i) % list.length]);
}

/** The world of one run: groups, users, companies and grants in the model, and the batch that makes them as root. */
function buildWorld(spec: Spec, p: string): { model: ScopeModel; body: string; groupIds: string[] } {
  const model = new ScopeModel();
  const groupIds: string[] = [];
  const depth: number[] = [];
  const ops: string[] = [];
  spec.groups.forEach((g, i) => {
    const candidates = [-1, ...range(i).filter((j) => depth[j] < 4)];
    const parent = candidates[g.parent % candidates.length];
    depth[i] = parent === -1 ? 1 : depth[parent] + 1;
    const id = `${p}g${i}x`;
    const parentId = parent === -1 ? ROOT : groupIds[parent];
    groupIds.push(id);
    const seats = g.seats ? 100 : null;
    model.addGroup({ id, name: `Group ${i} of ${p}`, parent: parentId, seats });
    ops.push(`<licenseGroup><id>${id}</id><name>Group ${i} of ${p}</name><parent>${parentId}</parent>${seats === null ? '' : `<seats>${seats}</seats>`}</licenseGroup>`);
  });
  const groupOf = (n: number): string => {
    const i = (n % (groupIds.length + 1)) - 1;
    return i < 0 ? ROOT : groupIds[i];
  };
  const users: ModelUser[] = spec.users.map((u, i) => {
    const id = `${p}u${i}z`;
    const permissions = new Set<string>(u.everything ? PERMISSIONS : u.permissions);
    return { username: u.upper ? id.toUpperCase() : id, group: groupOf(u.group), permissions, userType: u.userType, deleted: false, blocked: false, password: `password of ${id}` };
  });
  for (const u of users) {
    model.addUser(u);
    const perms = PERMISSIONS.map((name) => `<${name}>${u.permissions.has(name)}</${name}>`).join('');
    ops.push(
      `<user><username>${u.username}</username><password>${u.password}</password><permissions>${perms}</permissions><userType>${u.userType}</userType><licenseGroup>${u.group}</licenseGroup></user>`,
    );
  }
  spec.companies.forEach((c, i) => {
    const id = `${p}c${i}y`;
    // The name derives to the id itself, so that a company derived from it elsewhere collides (SPEC §4.2).
    const name = id.toUpperCase().replace(/_/g, ' ');
    const admin = users[c.admin % users.length];
    model.addCompany({ id, name, group: groupOf(c.group), show: true });
    model.grant(admin.username, id, 'ADMIN');
    ops.push(`<company><id>${id}</id><name>${name}</name><adminUser>${admin.username}</adminUser><licenseGroup>${groupOf(c.group)}</licenseGroup></company>`);
  });
  for (const g of spec.grants) {
    const user = users[g.user % users.length];
    const company = `${p}c${g.company % spec.companies.length}y`;
    model.grant(user.username, company, g.role);
    ops.push(`<access user="${user.username}" role="${g.role}">${company}</access>`);
  }
  spec.companies.forEach((c, i) => {
    if (!c.hidden) return;
    (model.companies.get(`${p}c${i}y`) as { show: boolean }).show = false;
    ops.push(`<company><id>${p}c${i}y</id><show>false</show></company>`);
  });
  spec.users.forEach((u, i) => {
    if (u.deleted) {
      users[i].deleted = true;
      ops.push(`<user action="delete"><username>${users[i].username}</username></user>`);
    } else if (u.blocked) {
      users[i].blocked = true;
      ops.push(`<user><username>${users[i].username}</username><blocked>true</blocked></user>`);
    }
  });
  return { model, groupIds, body: `<flexibee-batch id="${p}build">\n${ops.join('\n')}\n</flexibee-batch>\n` };
}

/**
 * The principals of a run. A user acts only while it can (not deleted, not blocked) and only below
 * root (a root scope has nothing outside it); without such a user, a certificate of a group stands in.
 */
function principalsOf(spec: Spec, model: ScopeModel, groupIds: string[], p: string): Principal[] {
  const users = [...model.users.values()].filter((u) => u.group !== ROOT && !u.deleted && !u.blocked);
  return spec.principals.map((ps, k): Principal => {
    const user = users[ps.user % Math.max(users.length, 1)];
    if (ps.kind === 'certificate' || !user) {
      const scope = groupIds[ps.group % groupIds.length];
      const tls = { cert: partners[k].certPem, key: partners[k].keyPem };
      return { label: `certificate ${k} scoped to ${scope}`, viewer: { scope }, tls, headers: {}, batchPath: '/admin/batch', kind: 'certificate' };
    }
    const viewer = { scope: user.group, actingUser: user.username };
    if (ps.kind === 'impersonation') {
      return { label: `dev client as ${user.username}`, viewer, tls: devClient, headers: { [AS]: user.username }, batchPath: '/admin/batch', kind: 'impersonation' };
    }
    if (ps.kind === 'password') {
      const headers = { ...basic(SERVER_USER, SERVER_PASSWORD), [AS]: user.username };
      return { label: `server password as ${user.username}`, viewer, tls: null, headers, batchPath: '/admin/batch', kind: 'impersonation' };
    }
    const tenants = [...model.groups.keys()].filter((g) => model.isWithin(g, user.group)).sort();
    const tenant = tenants[ps.tenant % tenants.length];
    return {
      label: `session of ${user.username} in tenant ${tenant} (${p})`,
      viewer: { scope: tenant, actingUser: user.username },
      tls: null,
      headers: {},
      batchPath: '/v2/admin/batch',
      kind: 'session',
      login: { username: user.username, password: user.password },
    };
  });
}

// ── comparing answers ───────────────────────────────────────────────────────────────────

class Mismatch extends Error {}

const show = (a: Answer): string => `${a.status} ${JSON.stringify(a.headers)}\n${a.body}`;

/** Every occurrence of each id replaced by a placeholder: what is left is what the answer says beyond the id. */
function withoutIds(answer: Answer, ids: readonly string[]): Answer {
  let body = answer.body;
  for (const id of ids) body = body.split(id).join('‹ID›');
  return { ...answer, body };
}

function expectSameAnswer(principal: Principal, what: string, outside: Answer, outsideId: string, fresh: Answer, freshId: string): void {
  const a = withoutIds(outside, [outsideId]);
  const b = withoutIds(fresh, [freshId]);
  if (isDeepStrictEqual(a, b)) return;
  throw new Mismatch(`${principal.label}: ${what} for ${outsideId} (outside the scope) differs from the answer for ${freshId} (exists nowhere)\n--- for ${freshId}:\n${show(fresh)}\n--- for ${outsideId}:\n${show(outside)}`);
}

function expectEqual(actual: unknown, expected: unknown, what: string): void {
  if (isDeepStrictEqual(actual, expected)) return;
  throw new Mismatch(`${what}\nexpected: ${JSON.stringify(expected, null, 1)}\nactual:   ${JSON.stringify(actual, null, 1)}`);
}

function json(answer: Answer, what: string): { winstrom: Record<string, unknown> } {
  if (answer.status !== 200) throw new Mismatch(`${what}: expected 200, got ${show(answer)}`);
  return JSON.parse(answer.body) as { winstrom: Record<string, unknown> };
}

// ── requests as a principal ─────────────────────────────────────────────────────────────

const get = (pr: Principal, path: string, extra: Record<string, string> = {}): Promise<Answer> => client.call(pr.tls, 'GET', path, { ...pr.headers, ...extra });
const send = (pr: Principal, body: string): Promise<Answer> => client.call(pr.tls, 'PUT', pr.batchPath, pr.headers, body);
const asRoot = (body: string): Promise<Answer> => client.call(devClient, 'PUT', '/admin/batch', {}, body);

function login(body: Record<string, string>): Promise<Answer> {
  return client.call(null, 'POST', '/login-logout/login', { 'Content-Type': 'application/json' }, JSON.stringify(body));
}

/** Sends a batch for real and journals it in the model when the server accepts it. */
async function sendJournalled(run: Run, pr: Principal, body: string, batchId: string): Promise<Answer> {
  const answer = await send(pr, body);
  const accepted = pr.kind !== 'session' || run.model.sendsSessionBatches(pr.viewer.actingUser as string);
  expectEqual(answer.status, accepted ? 200 : 403, `${pr.label}: the status of batch ${batchId}`);
  if (answer.status === 200) {
    run.model.journal.push({ batchId, scope: pr.viewer.scope, actingUser: pr.viewer.actingUser === undefined ? null : keyOf(pr.viewer.actingUser), resultXml: answer.body });
    if (!run.batchIds.includes(batchId)) run.batchIds.push(batchId);
  }
  return answer;
}

// ── the probes ──────────────────────────────────────────────────────────────────────────

/** Listings, access lists, tenants and groups of the scope are exactly the model's. */
async function checkReadings(run: Run, pr: Principal): Promise<void> {
  const { model } = run;
  const v = pr.viewer;
  const inScope = [...model.groups.keys()].filter((g) => model.isWithin(g, v.scope)).sort();
  for (const group of [undefined, ...pick(run, inScope, 1, 1)]) {
    const q = group === undefined ? '' : `&group=${group}`;
    const users = json(await get(pr, `/u.json?limit=0${q}`), `${pr.label}: /u.json${q}`).winstrom.user as Array<Record<string, unknown>>;
    expectEqual(
      users.map((u) => [u.username, u.licenseGroup, u.blocked, u.userType]),
      model.listedUsers(v, group).map((u) => [u.username, u.group, u.blocked, u.userType]),
      `${pr.label}: /u.json${q} lists the users of its scope`,
    );
    const companies = json(await get(pr, `/c.json?limit=0${q}`), `${pr.label}: /c.json${q}`).winstrom.company as Array<Record<string, unknown>>;
    expectEqual(
      companies.map((c) => [c.dbNazev, c.licenseGroup, c.show]),
      model.listedCompanies(v, group).map((c) => [c.id, c.group, c.show]),
      `${pr.label}: /c.json${q} lists the companies of its scope`,
    );
    const groups = json(await get(pr, `/g.json?limit=0${q}`), `${pr.label}: /g.json${q}`).winstrom.group as Array<Record<string, unknown>>;
    expectEqual(
      groups.map((g) => [g.id, g.name, g.parent, g.path, g.seats, g.seatsUsed]),
      model.listedGroups(v, group).map((g) => [g.id, g.name, g.parent, g.path, g.seats, g.seatsUsed]),
      `${pr.label}: /g.json${q} lists the groups of its scope`,
    );
  }
  for (const id of pick(run, inScope, 2, 2)) {
    const [g] = json(await get(pr, `/g/${id}.json`), `${pr.label}: /g/${id}.json`).winstrom.group as Array<Record<string, unknown>>;
    const children = [...model.groups.values()].filter((c) => c.parent === id).map((c) => c.id).sort();
    expectEqual([g.id, g.path, g.children], [id, model.path(id), children], `${pr.label}: /g/${id}.json`);
  }
  const freshUser = `${run.p}zz_nowhere_r`;
  const missingUser = await get(pr, `/u/${freshUser}.json`);
  const missingTenants = await get(pr, `/u/${freshUser}/tenants.json`);
  const scopeUsers = [...model.users.values()].filter((u) => model.isWithin(u.group, v.scope));
  for (const u of pick(run, scopeUsers, 3, 3)) {
    const detail = model.readableUser(v, u.username);
    const answer = await get(pr, `/u/${u.username}.json`);
    if (detail) {
      const [shown] = json(answer, `${pr.label}: /u/${u.username}.json`).winstrom.user as Array<Record<string, unknown>>;
      expectEqual(shown.access, detail.access, `${pr.label}: the access list of ${u.username} names only companies of the scope`);
    } else {
      expectSameAnswer(pr, 'GET /u/{login}.json (a user it may not read)', answer, u.username, missingUser, freshUser);
    }
    const tenants = model.readableTenants(v, u.username);
    const tenantAnswer = await get(pr, `/u/${u.username}/tenants.json`);
    if (tenants) {
      expectEqual(json(tenantAnswer, `${pr.label}: /u/${u.username}/tenants.json`).winstrom.tenant, tenants, `${pr.label}: the tenants of ${u.username} in its scope`);
    } else {
      expectSameAnswer(pr, 'GET /u/{login}/tenants.json (a user it may not read)', tenantAnswer, u.username, missingTenants, freshUser);
    }
  }
  // The journal: what it may read is the newest entry of its scope; anything else is a batch never sent.
  const freshBatch = `${run.p}zz_nowhere_b`;
  const neverSent = await get(pr, `/admin/batch/${freshBatch}`);
  for (const id of run.batchIds) {
    const entry = model.journalEntry(v, id);
    const answer = await get(pr, `/admin/batch/${id}`);
    if (entry) expectEqual([answer.status, answer.body], [200, entry.resultXml], `${pr.label}: GET /admin/batch/${id} is the newest entry of its scope`);
    else expectSameAnswer(pr, 'GET /admin/batch/{id}', answer, id, neverSent, freshBatch);
  }
}

/** Reads naming an id: the same requests for an object outside the scope and for one that exists nowhere. */
async function compareReads(pr: Principal, paths: Array<(id: string) => string>, outside: string, fresh: string, freshAnswers: Map<string, Answer>): Promise<void> {
  for (const path of paths) {
    const template = path('‹ID›');
    let freshAnswer = freshAnswers.get(template);
    if (!freshAnswer) freshAnswers.set(template, (freshAnswer = await get(pr, path(fresh))));
    expectSameAnswer(pr, `GET ${template}`, await get(pr, path(outside)), outside, freshAnswer, fresh);
  }
}

const USER_READS = [(id: string) => `/u/${id}.json`, (id: string) => `/u/${id}.xml`, (id: string) => `/u/${id}/tenants.json`, (id: string) => `/u/${id}/tenants.xml`];
const GROUP_READS = [
  (id: string) => `/g/${id}.json`,
  (id: string) => `/g/${id}.xml`,
  (id: string) => `/u.json?group=${id}`,
  (id: string) => `/c.xml?group=${id}`,
  (id: string) => `/g.json?group=${id}&add-row-count=true`,
  (id: string) => `/u.xml?group=${id}&limit=0`,
];

const batch = (id: string, ops: string[], dryRun: boolean): string =>
  `<?xml version="1.0"?>\n<flexibee-batch id="${id}"${dryRun ? ' dry-run="true"' : ''}>\n${ops.join('\n')}\n</flexibee-batch>\n`;

/**
 * A batch whose every operation names the id and must answer as for an id that exists nowhere;
 * sent dry-run, and once per principal and kind for real (it must change nothing). The operations
 * never create anything when the id exists nowhere, so neither variant changes the state the
 * operations after it see.
 */
async function compareBatch(run: Run, pr: Principal, what: string, ops: (id: string) => string[], outside: string, fresh: string, real: boolean): Promise<void> {
  const id = real ? `${run.p}real${run.realSends++}` : `${run.p}probe`;
  const sendIt = (target: string): Promise<Answer> => (real ? sendJournalled(run, pr, batch(id, ops(target), false), id) : send(pr, batch(id, ops(target), true)));
  const outsideAnswer = await sendIt(outside);
  const freshAnswer = await sendIt(fresh);
  expectSameAnswer(pr, `${real ? 'a batch' : 'a dry-run batch'} of ${what} forms (${ops('‹ID›').join(' ')})`, outsideAnswer, outside, freshAnswer, fresh);
}

interface Exceptional {
  /** The operation naming the id. */
  op: (id: string) => string;
  /** What the answer calls the id: "username", "company id", "license group id". */
  taken: string;
  /** For a company derived from a name: the name that derives to the id, and the id the server must choose. */
  derived?: { name: (id: string) => string; chosen: (id: string) => string };
}

/**
 * SPEC §7's one exception: creating an id taken outside the scope is FAILED "… X is not available",
 * in exactly these words wherever it is taken, where the same create of a free id would succeed; a
 * derived company id skips it. A principal that may not create the object at all, or a create that
 * is invalid anyway, gets exactly the answer a free id gets.
 */
async function compareCreations(run: Run, pr: Principal, forms: Exceptional[], outside: string, fresh: string): Promise<void> {
  const freshIds = forms.map((_, k) => `${fresh}${k}f`);
  const id = `${run.p}probe`;
  const outsideAnswer = await send(pr, batch(id, forms.map((f) => (f.derived ? f.op(f.derived.name(outside)) : f.op(outside))), true));
  const freshAnswer = await send(pr, batch(id, forms.map((f, k) => (f.derived ? f.op(f.derived.name(freshIds[k])) : f.op(freshIds[k]))), true));
  if (freshAnswer.status !== 200) {
    // A session whose user may not send batches at all: refused the same way whatever they name.
    expectEqual(withoutIds(outsideAnswer, [outside]), withoutIds(freshAnswer, freshIds), `${pr.label}: a refused batch`);
    return;
  }
  const outsideEntries = entries(outsideAnswer.body);
  const freshEntries = entries(freshAnswer.body);
  forms.forEach((form, k) => {
    const f = freshEntries[k];
    const o = outsideEntries[k];
    const where = `${pr.label}: ${form.op('‹ID›')} for ${outside} (outside the scope) and ${freshIds[k]} (exists nowhere)`;
    const denied = f.status === 'FAILED' && (f.message ?? '').startsWith('permission denied');
    if (form.derived) {
      const chosen = denied ? derivedCompanyId(form.derived.name(outside)) : form.derived.chosen(outside);
      expectEqual(entryWithout(o, chosen), entryWithout(f, freshIds[k]), `${where}: the derived id skips ids taken anywhere (${chosen})`);
    } else if (denied || f.status !== 'CREATED') {
      // Not allowed, or invalid anyway: the answer is exactly that for a free id (docs/security.md).
      expectEqual(entryWithout(o, outside), entryWithout(f, freshIds[k]), `${where}: where a create would not succeed, the answer is that for a free id`);
    } else {
      expectEqual(o, { ...f, id: outside, status: 'FAILED', message: `${form.taken} ${outside} is not available` }, `${where}: the one message of SPEC §7 for a taken global id`);
    }
  });
}

/** An entry of a result with the id replaced wherever it occurs. */
function entryWithout(entry: ReturnType<typeof entries>[number], id: string): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(entry).map(([k, value]) => [k, value?.split(id).join('‹ID›')]));
}

/** Everything a principal can name of objects outside its scope, each compared with a fresh id. */
async function probeOutside(run: Run, pr: Principal): Promise<void> {
  const { model, p } = run;
  const v = pr.viewer;
  const fresh = { user: `${p}zz_nowhere_u`, company: `${p}zz_nowhere_c`, group: `${p}zz_nowhere_g` };
  const freshAnswers = new Map<string, Answer>();
  // What of the scope the forms name beside the probed id (or ids that exist nowhere, when the scope has none).
  const liveUsers = [...model.users.values()].filter((u) => !u.deleted && model.isWithin(u.group, v.scope));
  const someUser = pick(run, liveUsers, 1, 4)[0]?.username ?? `${p}zz_nobody`;
  const shownCompanies = [...model.companies.values()].filter((c) => c.show && model.isWithin(c.group, v.scope));
  const someCompany = pick(run, shownCompanies, 1, 5)[0]?.id ?? `${p}zz_nocompany`;
  const below = [...model.groups.keys()].filter((g) => g !== v.scope && model.isWithin(g, v.scope)).sort();
  const sub = pick(run, below, 1, 6)[0];
  const newCompany = `${p}zz_newc`;
  const newGroup = `${p}zz_newg`;
  const newUser = `${p}zz_newu`;

  // A session working in a tenant below its user's group has its own user outside its scope too; the
  // answers name that user for other reasons (a refused batch), so it is not one of the probes.
  const outsideUsers = model.usersOutside(v).filter((u) => v.actingUser === undefined || keyOf(u.username) !== keyOf(v.actingUser));
  const usersOutside = pick(run, outsideUsers, PROBES_PER_KIND, 7);
  for (const [n, user] of usersOutside.entries()) {
    const ux = run.spec.flipCase ? flip(user.username) : user.username;
    await compareReads(pr, USER_READS, ux, fresh.user, freshAnswers);
    if (pr.kind === 'certificate') {
      const outsideAnswer = await get(pr, '/u.json', { [AS]: ux });
      const freshAnswer = await get(pr, '/u.json', { [AS]: fresh.user });
      expectSameAnswer(pr, 'X-FlexiBee-Authorization', outsideAnswer, ux, freshAnswer, fresh.user);
    }
    const forms = (id: string): string[] => [
      `<user action="delete"><username>${id}</username></user>`,
      `<access user="${id}" role="UCETNI">${someCompany}</access>`,
      `<access user="${id}">${someCompany}</access>`,
      `<access user="${id}" action="delete">${someCompany}</access>`,
      `<access user="${id}" role="SKLADNIK"/>`,
      `<company><id>${newCompany}</id><name>New company</name><adminUser>${id}</adminUser></company>`,
      `<company><id>${someCompany}</id><adminUser>${id}</adminUser></company>`,
      `<licenseGroup><id>${newGroup}</id><name>New group</name><param name="taskUser">${id}</param></licenseGroup>`,
      ...(sub ? [`<licenseGroup><id>${sub}</id><param name="taskUser">${id}</param></licenseGroup>`] : []),
    ];
    await compareBatch(run, pr, 'user', forms, ux, fresh.user, false);
    if (n === 0) await compareBatch(run, pr, 'user', forms, ux, fresh.user, true);
    await compareCreations(
      run,
      pr,
      [
        { op: (id) => `<user><username>${id}</username></user>`, taken: 'username' },
        { op: (id) => `<user><username>${id}</username><givenName>Eva</givenName><licenseGroup>${v.scope}</licenseGroup></user>`, taken: 'username' },
      ],
      ux,
      fresh.user,
    );
  }

  const companiesOutside = pick(run, model.companiesOutside(v), PROBES_PER_KIND, 8);
  for (const [n, company] of companiesOutside.entries()) {
    // A user of the scope with a grant into the company, if there is one: its grant must stay out of sight.
    const grantee = liveUsers.find((u) => model.grantsOf(u.username).has(company.id))?.username ?? someUser;
    const forms = (id: string): string[] => [
      `<company action="delete"><id>${id}</id></company>`,
      `<access user="${grantee}" role="UCETNI">${id}</access>`,
      `<access user="${grantee}">${id}</access>`,
      `<access user="${grantee}" action="delete">${id}</access>`,
    ];
    await compareBatch(run, pr, 'company', forms, company.id, fresh.company, false);
    if (n === 0) await compareBatch(run, pr, 'company', forms, company.id, fresh.company, true);
    const nameOf = (id: string): string => id.toUpperCase().replace(/_/g, ' ');
    await compareCreations(
      run,
      pr,
      [
        { op: (id) => `<company><id>${id}</id><name>Firma s.r.o.</name><adminUser>${someUser}</adminUser></company>`, taken: 'company id' },
        { op: (id) => `<company><id>${id}</id><show>false</show></company>`, taken: 'company id' },
        {
          op: (name) => `<company><name>${name}</name><adminUser>${someUser}</adminUser></company>`,
          taken: 'company id',
          derived: { name: nameOf, chosen: (id) => model.freeDerivedId(nameOf(id)) },
        },
      ],
      company.id,
      fresh.company,
    );
  }

  // Root and the groups above the scope are outside it too: always probe one of those.
  const groupsOutside = model.groupsOutside(v);
  const above = groupsOutside.filter((g) => model.isWithin(v.scope, g.id));
  const aside = groupsOutside.filter((g) => !model.isWithin(v.scope, g.id));
  const probedGroups = [...pick(run, above, 1, 9), ...pick(run, aside, PROBES_PER_KIND - 1, 10)];
  for (const [n, group] of probedGroups.entries()) {
    await compareReads(pr, GROUP_READS, group.id, fresh.group, freshAnswers);
    const forms = (id: string): string[] => [
      `<licenseGroup action="delete"><id>${id}</id></licenseGroup>`,
      `<licenseGroup><id>${newGroup}</id><name>New group</name><parent>${id}</parent></licenseGroup>`,
      ...(sub ? [`<licenseGroup><id>${sub}</id><parent>${id}</parent></licenseGroup>`] : []),
      `<user><username>${newUser}</username><licenseGroup>${id}</licenseGroup></user>`,
      `<user><username>${someUser}</username><licenseGroup>${id}</licenseGroup></user>`,
      `<company><id>${newCompany}</id><name>New company</name><adminUser>${someUser}</adminUser><licenseGroup>${id}</licenseGroup></company>`,
      `<company><id>${someCompany}</id><licenseGroup>${id}</licenseGroup></company>`,
    ];
    await compareBatch(run, pr, 'license group', forms, group.id, fresh.group, false);
    if (n === 0) await compareBatch(run, pr, 'license group', forms, group.id, fresh.group, true);
    await compareCreations(
      run,
      pr,
      [
        { op: (id) => `<licenseGroup><id>${id}</id><name>Taken?</name></licenseGroup>`, taken: 'license group id' },
        { op: (id) => `<licenseGroup><id>${id}</id><parent>${v.scope}</parent></licenseGroup>`, taken: 'license group id' },
        { op: (id) => `<licenseGroup><id>${id}</id><seats>7</seats></licenseGroup>`, taken: 'license group id' },
        { op: (id) => `<licenseGroup><id>${id}</id><param name="defaultRole">UCETNI</param></licenseGroup>`, taken: 'license group id' },
      ],
      group.id,
      fresh.group,
    );
    if (pr.login && !model.isWithin(group.id, (model.users.get(keyOf(pr.login.username)) as ModelUser).group)) {
      // Only one who knows the password learns that a tenant is not in its user's scope — and no more than that.
      const outsideAnswer = await login({ ...pr.login, tenant: group.id });
      const freshAnswer = await login({ ...pr.login, tenant: fresh.group });
      expectSameAnswer(pr, 'a login to a tenant', outsideAnswer, group.id, freshAnswer, fresh.group);
    }
  }
}

/**
 * `<access role="R"/>` for users of the scope with grants outside it: only the grants in the scope
 * count and change (dry-run here; for real at the end of the run).
 */
async function checkRoleEverywhere(run: Run, pr: Principal): Promise<void> {
  const { model } = run;
  const v = pr.viewer;
  const users = [...model.users.values()].filter((u) => !u.deleted && model.isWithin(u.group, v.scope) && model.grantsOf(u.username).size > 0);
  for (const u of pick(run, users, 2, 11)) {
    const answer = await send(pr, batch(`${run.p}probe`, [`<access user="${u.username}" role="SKLADNIK"/>`], true));
    if (pr.kind === 'session' && !model.sendsSessionBatches(v.actingUser as string)) {
      expectEqual(answer.status, 403, `${pr.label}: a session whose user may not send batches`);
      continue;
    }
    const [entry] = entries(answer.body);
    const visible = [...model.grantsOf(u.username)].filter(([c]) => model.companyInScope(v, c) !== undefined);
    const changing = visible.filter(([, role]) => role !== 'SKLADNIK').map(([c]) => c);
    const where = `${pr.label}: <access user="${u.username}" role="SKLADNIK"/> with grants ${JSON.stringify([...model.grantsOf(u.username)])}`;
    if (visible.length === 0) expectEqual([entry.status, entry.message], ['SKIPPED', 'user has no access to any company'], where);
    else if (changing.length === 0) expectEqual([entry.status, entry.message], ['SKIPPED', undefined], where);
    else if (pr.kind === 'certificate') expectEqual([entry.status, entry.message], ['UPDATED', undefined], where);
    else if (entry.status === 'FAILED') {
      const admin = /^permission denied: ADMIN role in (\S+) or manageAll required$/.exec(entry.message ?? '');
      if (admin && !changing.includes(admin[1])) throw new Mismatch(`${where}: the refusal names ${admin[1]}, which is not a grant of the scope that changes`);
      if (!admin && entry.message !== 'permission denied: grantPermission required') throw new Mismatch(`${where}: ${entry.message}`);
    } else expectEqual(entry.status, 'UPDATED', where);
  }
}

/** The same, for real: the grants outside the scope keep their roles. */
async function changeRolesEverywhere(run: Run, pr: Principal): Promise<void> {
  const { model } = run;
  const v = pr.viewer;
  const user = [...model.users.values()].find(
    (u) => !u.deleted && model.isWithin(u.group, v.scope) && [...model.grantsOf(u.username).keys()].some((c) => model.companyInScope(v, c) === undefined),
  );
  if (!user) return;
  const before = model.grantsOf(user.username);
  const id = `${run.p}real${run.realSends++}`;
  await sendJournalled(run, pr, batch(id, [`<access user="${user.username}" role="SKLADNIK"/>`], false), id);
  // Rows made by the driver (outside jest's realm) copied into plain objects of this one, to compare them deeply.
  const rows = queryRows(server.db, 'SELECT company_id, role FROM access WHERE user_key = ? ORDER BY company_id', keyOf(user.username));
  const stored = Array.from(rows, (r) => ({ company_id: String(r.company_id), role: String(r.role) }));
  const expected = [...before]
    .map(([company, role]) => ({ company_id: company, role: model.companyInScope(v, company) ? 'SKLADNIK' : role }))
    .sort((a, b) => (a.company_id < b.company_id ? -1 : 1));
  expectEqual(stored, expected, `${pr.label}: <access user="${user.username}" role="SKLADNIK"/> changes the grants of its scope only`);
  for (const { company_id, role } of expected) model.grant(user.username, company_id, role);
}

async function runOnce(spec: Spec): Promise<void> {
  const p = `q${++runCount}_`;
  const { model, body, groupIds } = buildWorld(spec, p);
  const built = await asRoot(body);
  expectEqual(built.status, 200, `the world of ${p} is built`);
  const failed = entries(built.body).filter((e) => e.status === 'FAILED');
  expectEqual(failed, [], `the world of ${p} is built without a FAILED entry`);
  model.journal.push({ batchId: `${p}build`, scope: ROOT, actingUser: null, resultXml: built.body });
  const run: Run = { p, spec, model, principals: principalsOf(spec, model, groupIds, p), batchIds: [`${p}build`], realSends: 0 };

  for (const [k, pr] of run.principals.entries()) {
    if (pr.kind === 'certificate') {
      await server.running.store.addFingerprint({ fingerprint: fingerprintOfCertificate(partners[k].certPem), scope: pr.viewer.scope, label: `isolation ${k}` });
    }
    if (pr.login) {
      const answer = await login({ ...pr.login, tenant: pr.viewer.scope });
      const { authSessionId, tenant, tenants } = json(answer, `${pr.label}: login`) as unknown as { authSessionId: string; tenant: string; tenants: string[] };
      const own = (model.users.get(keyOf(pr.login.username)) as ModelUser).group;
      expectEqual({ tenant, tenants }, { tenant: pr.viewer.scope, tenants: (model.tenantsIn(own, pr.login.username) ?? []).map((t) => t.id) }, `${pr.label}: the login's tenants`);
      pr.headers = { 'X-authSessionId': authSessionId };
    }
  }
  for (const [n, s] of spec.sends.entries()) {
    const pr = run.principals[s.principal % run.principals.length];
    const id = `${p}j${s.batch}`;
    await sendJournalled(run, pr, batch(id, [`<company action="delete"><id>${p}mark${n}m</id></company>`], false), id);
    if (!run.batchIds.includes(id)) run.batchIds.push(id);
  }

  const before = dumpStore(server.db);
  for (const pr of run.principals) {
    await checkReadings(run, pr);
    await probeOutside(run, pr);
    await checkRoleEverywhere(run, pr);
    // Read again: the real sends of the probes are journal entries of this scope now.
    await checkReadings(run, pr);
  }
  expectEqual(dumpStore(server.db), before, `${p}: the probes change nothing in the store`);
  for (const pr of run.principals) if (pr.kind === 'certificate') await changeRolesEverywhere(run, pr);
}

describe(`license-group isolation (SPEC §7) on ${STORE_KIND}`, () => {
  test('when principals scoped to random groups of random trees name objects outside their scope in every endpoint and batch form, then each answer is that for an id that exists nowhere (but the not-available message of a taken global id), and their readings are exactly their scope', async () => {
    await fc.assert(fc.asyncProperty(specArb, runOnce), {
      seed: SEED,
      numRuns: NUM_RUNS,
      endOnFailure: true,
      ...(process.env.FC_PATH ? { path: process.env.FC_PATH } : {}),
    });
  }, 300_000);
});
