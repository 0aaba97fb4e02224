import { createHash, pbkdf2, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

/**
 * Stored password forms (SPEC §4.3):
 *   ALG:SALT:HEX              HEX = hex(ALG(SALT + ":" + password)), ALG in sha256/sha512/sha1/md5
 *   pbkdf2:ITERATIONS:SALT:HEX  PBKDF2-HMAC-SHA256(password, SALT, ITERATIONS, 32 bytes)
 * The salt may itself contain ":", so the form is split at the first and last colon.
 *
 * Built on node:crypto rather than the unmaintained pbkdf2-password package: the async
 * pbkdf2 runs on libuv's thread pool, so hashing never blocks the event loop.
 */
export const DIGEST_ALGORITHMS = ['sha256', 'sha512', 'sha1', 'md5'] as const;
export const HASH_ALGORITHMS = [...DIGEST_ALGORITHMS, 'pbkdf2'] as const;
export type HashAlgorithm = (typeof HASH_ALGORITHMS)[number];

export const DEFAULT_PBKDF2_ITERATIONS = 600_000;
/**
 * The most PBKDF2 iterations a stored, pre-hashed or configured form may ask for: more than three
 * times OWASP's 2023 recommendation (600 000), while one check still costs a fraction of a second.
 * Without a bound, one imported hash could make every login of that user (and every decoy
 * check) hold a thread-pool thread for seconds.
 */
export const MAX_PBKDF2_ITERATIONS = 2_000_000;
const PBKDF2_KEY_LENGTH = 32;

/** Hex digits of each algorithm's digest; pbkdf2 stores a 32-byte key. */
export const DIGEST_HEX_DIGITS: Readonly<Record<HashAlgorithm, number>> = { sha256: 64, sha512: 128, sha1: 40, md5: 32, pbkdf2: 2 * PBKDF2_KEY_LENGTH };

const pbkdf2Async = promisify(pbkdf2);

export interface HashPolicy {
  algorithm: HashAlgorithm;
  pbkdf2Iterations: number;
}

export function isHashAlgorithm(text: string): text is HashAlgorithm {
  return (HASH_ALGORITHMS as readonly string[]).includes(text);
}

/** Whether `text` is a digest of `algorithm`: hex (either case) of exactly its length. */
export function isDigestOf(algorithm: HashAlgorithm, text: string): boolean {
  return text.length === DIGEST_HEX_DIGITS[algorithm] && /^[0-9a-fA-F]+$/.test(text);
}

/** Whether `iterations` is a PBKDF2 iteration count this server runs. */
export function isPbkdf2Iterations(iterations: number): boolean {
  return Number.isSafeInteger(iterations) && iterations >= 1 && iterations <= MAX_PBKDF2_ITERATIONS;
}

interface ParsedHash {
  algorithm: HashAlgorithm;
  iterations: number;
  salt: string;
  hex: string;
}

/**
 * A stored form this server can check, or undefined: an unknown algorithm, a digest of the wrong
 * length or not hex, or pbkdf2 iterations outside 1…MAX_PBKDF2_ITERATIONS. Forms written before
 * these rules existed may be any of those; they never verify (and never throw).
 */
export function parseStoredHash(stored: string): ParsedHash | undefined {
  const first = stored.indexOf(':');
  const last = stored.lastIndexOf(':');
  if (first < 0 || last === first) return undefined;
  const algorithm = stored.slice(0, first);
  const hex = stored.slice(last + 1);
  if (!isHashAlgorithm(algorithm) || !isDigestOf(algorithm, hex)) return undefined;
  if (algorithm !== 'pbkdf2') {
    return { algorithm, iterations: 0, salt: stored.slice(first + 1, last), hex };
  }
  const second = stored.indexOf(':', first + 1);
  if (second === last) return undefined;
  const count = stored.slice(first + 1, second);
  const iterations = Number(count);
  if (!/^[1-9][0-9]*$/.test(count) || !isPbkdf2Iterations(iterations)) return undefined;
  return { algorithm, iterations, salt: stored.slice(second + 1, last), hex };
}

export function formatStoredHash(algorithm: HashAlgorithm, salt: string, hex: string, iterations = 0): string {
  return algorithm === 'pbkdf2' ? `pbkdf2:${iterations}:${salt}:${hex}` : `${algorithm}:${salt}:${hex}`;
}

function digestHex(algorithm: Exclude<HashAlgorithm, 'pbkdf2'>, salt: string, password: string): string {
  return createHash(algorithm).update(`${salt}:${password}`, 'utf8').digest('hex');
}

function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a.toLowerCase(), 'utf8');
  const y = Buffer.from(b.toLowerCase(), 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

function newSalt(): string {
  return randomBytes(12).toString('base64url');
}

export async function hashPassword(password: string, policy: HashPolicy): Promise<string> {
  const salt = newSalt();
  if (policy.algorithm === 'pbkdf2') {
    const key = await pbkdf2Async(password, salt, policy.pbkdf2Iterations, PBKDF2_KEY_LENGTH, 'sha256');
    return formatStoredHash('pbkdf2', salt, key.toString('hex'), policy.pbkdf2Iterations);
  }
  return formatStoredHash(policy.algorithm, salt, digestHex(policy.algorithm, salt, password));
}

async function verifyParsed(parsed: ParsedHash, password: string): Promise<boolean> {
  if (parsed.algorithm !== 'pbkdf2') return sameHex(digestHex(parsed.algorithm, parsed.salt, password), parsed.hex);
  const key = await pbkdf2Async(password, parsed.salt, parsed.iterations, PBKDF2_KEY_LENGTH, 'sha256');
  return sameHex(key.toString('hex'), parsed.hex);
}

/** True or false, whatever `stored` holds: a form that cannot be parsed does not match. */
export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  const parsed = parseStoredHash(stored);
  return parsed ? verifyParsed(parsed, password) : false;
}

/** For the rare case the planner meets inside one batch; the batch path verifies asynchronously up front. */
export function verifyPasswordSync(stored: string, password: string): boolean {
  const parsed = parseStoredHash(stored);
  if (!parsed) return false;
  if (parsed.algorithm === 'pbkdf2') {
    const key = pbkdf2Sync(password, parsed.salt, parsed.iterations, PBKDF2_KEY_LENGTH, 'sha256');
    return sameHex(key.toString('hex'), parsed.hex);
  }
  return sameHex(digestHex(parsed.algorithm, parsed.salt, password), parsed.hex);
}

/** PBKDF2 iterations a check of `stored` runs: 0 for a plain digest and for a form that cannot be checked. */
export function pbkdf2IterationsOf(stored: string | null): number {
  const parsed = stored === null ? undefined : parseStoredHash(stored);
  return parsed?.algorithm === 'pbkdf2' ? parsed.iterations : 0;
}

/** PBKDF2 iterations of the forms this server writes for plain text. */
export function policyIterations(policy: HashPolicy): number {
  return policy.algorithm === 'pbkdf2' ? policy.pbkdf2Iterations : 0;
}

/**
 * Whether a stored form should be replaced by the policy's at a successful login: only a slow
 * policy (pbkdf2) upgrades, and only forms cheaper than it (a plain digest, or fewer
 * iterations). Plain digests are never swapped for one another: each is one hash call, so a swap
 * would only churn stored hashes. Nothing is ever downgraded.
 */
export function isWeakerThanPolicy(stored: string, policy: HashPolicy): boolean {
  const parsed = parseStoredHash(stored);
  if (!parsed || policy.algorithm !== 'pbkdf2') return false;
  return parsed.algorithm !== 'pbkdf2' || parsed.iterations < policy.pbkdf2Iterations;
}

export interface LoginCheck {
  matches: boolean;
  /** PBKDF2 iterations the check ran, padding included; the same for every check at one `work`. */
  pbkdf2Iterations: number;
}

const DECOY_SALT = 'flexi-admin decoy';

/**
 * Checks a login password so that the work does not tell which names exist or how their
 * passwords are stored: the check runs exactly `work` PBKDF2 iterations (the costliest form in
 * the store), padding a cheaper stored form, a missing user or an unusable stored form with
 * PBKDF2 over a decoy salt. When `work` is 0 (no PBKDF2 anywhere), a missing user still costs
 * one digest in the policy's algorithm, as a stored digest does.
 */
export async function checkLoginPassword(stored: string | null, password: string, work: number, policy: HashPolicy): Promise<LoginCheck> {
  const parsed = stored === null ? undefined : parseStoredHash(stored);
  let matches = false;
  let done = 0;
  if (parsed) {
    matches = await verifyParsed(parsed, password);
    done = parsed.algorithm === 'pbkdf2' ? parsed.iterations : 0;
  } else if (work === 0 && policy.algorithm !== 'pbkdf2') {
    digestHex(policy.algorithm, DECOY_SALT, password);
  }
  const padding = Math.max(0, Math.min(work, MAX_PBKDF2_ITERATIONS) - done);
  if (padding > 0) await pbkdf2Async(password, DECOY_SALT, padding, PBKDF2_KEY_LENGTH, 'sha256');
  return { matches, pbkdf2Iterations: done + padding };
}
