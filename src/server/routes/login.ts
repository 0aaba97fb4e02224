import express, { type Request, type Router } from 'express';
import { parseXmlDocument } from '../../xml/reader';
import { GROUP_ID_PATTERN } from '../../domain/groups';
import { FlexiError } from '../../errors';
import { asAttempt, clientAddress, loginKey, refuse, SESSION_HEADER } from '../authenticate';
import { isXmlType } from '../body';
import type { AppDeps } from '../context';
import { successDocument, type Format } from '../../xml/winstrom';
import { answerIn, sendAnswer } from '../answer';
import { login, sessionIdHash } from '../sessions';

const LOGIN_BODY_LIMIT = 64 * 1024;

/** XML when the path or the body says so, JSON otherwise. */
function answerFormat(req: Request): Format {
  if (req.path.endsWith('.xml')) return 'xml';
  if (req.path.endsWith('.json')) return 'json';
  return /xml/i.test(req.headers['content-type'] ?? '') ? 'xml' : 'json';
}

/** `{"username","password"}` as JSON, a form, or XML (`<login><username>…</username><password>…</password></login>`). */
function credentialsOf(req: Request): { username: string; password: string; tenant?: string } {
  const body: unknown = req.body;
  const text = Buffer.isBuffer(body) ? body.toString('utf8') : '';
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  let fields: Record<string, unknown> = {};
  if (type === 'application/json' || (type === '' && text.trimStart().startsWith('{'))) {
    try {
      fields = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new FlexiError('bad-request', 'The login body is not valid JSON; send {"username": "…", "password": "…"}.');
    }
  } else if (type === 'application/x-www-form-urlencoded') {
    fields = Object.fromEntries(new URLSearchParams(text));
  } else if (isXmlType(type) || (type === '' && text.trimStart().startsWith('<'))) {
    const root = parseXmlDocument(text);
    for (const child of root.children) fields[child.name] = child.text;
  } else {
    throw new FlexiError('unsupported-media-type', 'Send the login as JSON, a form (application/x-www-form-urlencoded) or XML.');
  }
  const { username, password, tenant } = fields ?? {};
  if (typeof username !== 'string' || typeof password !== 'string' || !username) {
    throw new FlexiError('bad-request', 'The login needs a username and a password.');
  }
  if (tenant !== undefined && (typeof tenant !== 'string' || !GROUP_ID_PATTERN.test(tenant))) {
    throw new FlexiError('bad-request', 'The tenant of a login must be a license group id: 1–64 characters of a–z, 0–9 and _.');
  }
  return { username, password, ...(tenant === undefined ? {} : { tenant }) };
}


export function loginRoutes(router: Router, deps: AppDeps): void {
  const readBody = express.raw({ type: () => true, limit: LOGIN_BODY_LIMIT });
  const auth = deps.auth;

  for (const path of ['/login-logout/login', '/login-logout/login.json', '/login-logout/login.xml']) {
    router.post(path, readBody, async (req, res) => {
      const format = answerFormat(req);
      res.locals.format = format;
      auth.throttle.assertAllowed(clientAddress(req));
      const credentials = credentialsOf(req);
      const { username } = credentials;
      const result = await asAttempt(auth.throttle.begin(clientAddress(req), loginKey(username)), async () => {
        const outcome = await login(deps.store, deps.passwordChecks, credentials, auth.sessionIdleMs);
        if (outcome.ok) return outcome;
        // Only one who knows the password learns that the tenant is not one of its scope; nothing is made.
        if (outcome.reason === 'tenant') throw new FlexiError('forbidden', `Cannot log in to tenant ${outcome.tenant}: no such license group in your scope.`);
        if (outcome.reason === 'blocked') refuse(auth, req, { kind: 'login-blocked', reason: `login of blocked user ${username}` }, `User ${outcome.username} is blocked: ${outcome.message}`);
        // The same 401 as every other refusal: nothing tells a wrong name from a wrong password.
        refuse(auth, req, { kind: 'login-failed', reason: `failed login for ${username}` }, undefined, { pbkdf2Iterations: outcome.pbkdf2Iterations });
      });
      res.locals.principal = { kind: 'session', name: result.user.username, scope: result.tenant, actingUser: result.user.username };
      sendAnswer(res, answerIn(format, successDocument({ authSessionId: result.sessionId, tenant: result.tenant, tenants: result.tenants }, format)));
    });
  }

  for (const path of ['/login-logout/logout', '/login-logout/logout.json', '/login-logout/logout.xml']) {
    router.post(path, async (req, res) => {
      const format = answerFormat(req);
      res.locals.format = format;
      const sessionId = req.headers[SESSION_HEADER];
      await asAttempt(auth.throttle.begin(clientAddress(req)), async () => {
        if (typeof sessionId !== 'string' || !(await deps.store.deleteSession(sessionIdHash(sessionId), Date.now(), auth.sessionIdleMs))) {
          refuse(auth, req, { kind: 'logout-without-session', reason: 'logout without a live session' });
        }
      });
      sendAnswer(res, answerIn(format, successDocument({}, format)));
    });
  }
}
