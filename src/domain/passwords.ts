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
const PBKDF2_KEY_LENGTH = 32;

const pbkdf2Async = promisify(pbkdf2);

export interface HashPolicy {
  algorithm: HashAlgorithm;
  pbkdf2Iterations: number;
}

export function isHashAlgorithm(text: string): text is HashAlgorithm {
  return (HASH_ALGORITHMS as readonly string[]).includes(text);
}

interface ParsedHash {
  algorithm: HashAlgorithm;
  iterations: number;
  salt: string;
  hex: string;
}

export function parseStoredHash(stored: string): ParsedHash | undefined {
  const first = stored.indexOf(':');
  const last = stored.lastIndexOf(':');
  if (first < 0 || last === first) return undefined;
  const algorithm = stored.slice(0, first);
  const hex = stored.slice(last + 1);
  if (!isHashAlgorithm(algorithm)) return undefined;
  if (algorithm !== 'pbkdf2') {
    return { algorithm, iterations: 0, salt: stored.slice(first + 1, last), hex };
  }
  const second = stored.indexOf(':', first + 1);
  if (second === last) return undefined;
  const iterations = Number(stored.slice(first + 1, second));
  if (!Number.isSafeInteger(iterations) || iterations < 1) return undefined;
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

export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  const parsed = parseStoredHash(stored);
  if (!parsed) return false;
  if (parsed.algorithm !== 'pbkdf2') return verifyPasswordSync(stored, password);
  const key = await pbkdf2Async(password, parsed.salt, parsed.iterations, parsed.hex.length / 2 || PBKDF2_KEY_LENGTH, 'sha256');
  return sameHex(key.toString('hex'), parsed.hex);
}

/** For the rare case the planner meets inside one batch; the batch path verifies asynchronously up front. */
export function verifyPasswordSync(stored: string, password: string): boolean {
  const parsed = parseStoredHash(stored);
  if (!parsed) return false;
  if (parsed.algorithm === 'pbkdf2') {
    const key = pbkdf2Sync(password, parsed.salt, parsed.iterations, parsed.hex.length / 2 || PBKDF2_KEY_LENGTH, 'sha256');
    return sameHex(key.toString('hex'), parsed.hex);
  }
  return sameHex(digestHex(parsed.algorithm, parsed.salt, password), parsed.hex);
}
