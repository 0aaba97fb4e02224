import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseXmlDocument } from '../xml/reader';
import { FlexiError } from '../errors';

export const MIN_SERVER_PASSWORD = 15;

export interface ServerCredentials {
  username: string;
  /** Only digests are kept, so comparison is constant-time whatever the lengths. */
  usernameDigest: Buffer;
  passwordDigest: Buffer;
}

/** `<!DOCTYPE properties SYSTEM "…">` or `PUBLIC "…" "…"`, either quote style, no internal subset. */
const QUOTED = `(?:"[^"]*"|'[^']*')`;
const EXTERNAL_DOCTYPE = new RegExp(`<!DOCTYPE\\s+properties\\s+(?:SYSTEM\\s+${QUOTED}|PUBLIC\\s+${QUOTED}\\s+${QUOTED})\\s*>`);

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/**
 * The Java-properties XML of the original. Its DOCTYPE names a DTD on the internet; it is
 * dropped unread, never fetched. A DOCTYPE with an internal subset (entities) is refused.
 */
export function readServerAuth(path: string): ServerCredentials {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new FlexiError('config', `Cannot read the server-auth file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}.`);
  }
  const withoutDoctype = text.replace(/^\uFEFF/, '').replace(EXTERNAL_DOCTYPE, '');
  if (/<!\s*(DOCTYPE|ENTITY)/i.test(withoutDoctype)) {
    throw new FlexiError(
      'config',
      `The server-auth file ${path} may only name an external DTD (<!DOCTYPE properties SYSTEM "…">); entity declarations and internal DTD subsets are refused.`,
    );
  }
  let root;
  try {
    root = parseXmlDocument(withoutDoctype);
  } catch (err) {
    const reason = (err as Error).message.replace(/^The body is not a valid batch document: /, '');
    throw new FlexiError('config', `The server-auth file ${path} is not well-formed XML: ${reason}`);
  }
  const entries = new Map<string, string>();
  for (const child of root.children) {
    const key = child.attributes.get('key');
    if (child.name === 'entry' && key) entries.set(key, child.text);
  }
  const username = entries.get('username');
  const password = entries.get('password');
  if (root.name !== 'properties' || !username || password === undefined) {
    throw new FlexiError('config', `The server-auth file ${path} must be a <properties> document with entries "username" and "password".`);
  }
  if ([...password].length < MIN_SERVER_PASSWORD) {
    throw new FlexiError(
      'config',
      `The server-auth password in ${path} is shorter than ${MIN_SERVER_PASSWORD} characters; the server does not start with a weak password.`,
    );
  }
  return { username, usernameDigest: digest(username), passwordDigest: digest(password) };
}

export function checkServerCredentials(credentials: ServerCredentials, username: string, password: string): boolean {
  const nameOk = timingSafeEqual(digest(username), credentials.usernameDigest);
  const passwordOk = timingSafeEqual(digest(password), credentials.passwordDigest);
  return nameOk && passwordOk;
}
