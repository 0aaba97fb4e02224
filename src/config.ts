import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { DEFAULT_PBKDF2_ITERATIONS, HASH_ALGORITHMS, isHashAlgorithm, MAX_PBKDF2_ITERATIONS, type HashAlgorithm, type HashPolicy } from './domain/passwords';
import { FlexiError } from './errors';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Mozilla's "intermediate" TLS 1.2 suites (Server Side TLS 5.7): ECDHE only, so every session
 * has forward secrecy, and AEAD only. Its three DHE-RSA suites are left out: Node negotiates
 * DHE only with DH parameters, which the server does not configure. TLS 1.3 keeps OpenSSL's
 * three suites, which are the same as Mozilla's.
 */
export const TLS_CIPHERS_INTERMEDIATE = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');
export const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;
export type TlsVersion = (typeof TLS_VERSIONS)[number];

export interface Config {
  port: number;
  host: string;
  db: string;
  certs: string;
  serverAuth: string | null;
  passwordAuth: boolean;
  clientCa: string | null;
  devPki: boolean;
  bodyLimit: number;
  maxOperations: number;
  logLevel: LogLevel;
  passwordHash: HashAlgorithm;
  pbkdf2Iterations: number;
  requestTimeoutMs: number;
  shutdownTimeoutMs: number;
  sessionIdleMs: number;
  authMaxFailures: number;
  authMaxFailuresPerUser: number;
  authFailureWindowMs: number;
  passwordCheckConcurrency: number;
  passwordCheckQueue: number;
  dbPool: number;
  tlsCiphers: string;
  tlsMinVersion: TlsVersion;
  /** Run the task runner (date actions, webhook deliveries) inside `serve` (SPEC §10.4). */
  tasks: boolean;
  taskLeaseMs: number;
  /** When the date actions run each day, server local time, HH:MM. */
  taskTime: string;
  eventRetentionMs: number;
  webhookMaxEvents: number;
  webhookTimeoutMs: number;
  /** The waits before each retry of a failed delivery; after the last, the subscription is suspended. */
  webhookRetryMs: number[];
  webhookSecretOverlapMs: number;
  /** Hosts a webhook URL may name although they are (or resolve to) loopback, private, link-local or unspecified addresses; http:// is allowed for them. */
  webhookAllowHosts: string[];
}

/** One setting: its flag, environment variable, config-file key and how to read it. */
interface Setting<K extends keyof Config> {
  key: K;
  flag: string;
  env: string;
  help: string;
  boolean?: boolean;
  read: (text: string) => Config[K];
}

function integer(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^\d+$/.test(text.trim()) || n < min || n > max) throw usage(`${name} must be a whole number from ${min} to ${max}, not '${text}'`);
    return n;
  };
}

const DURATION_UNITS: Readonly<Record<string, number>> = { '': 1, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration (SPEC §1): milliseconds, or a number with a unit ms, s, m, h or d — `3000` and `3s` are the same. */
export function parseDuration(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(text);
  if (!m) return undefined;
  const ms = Number(m[1]) * DURATION_UNITS[(m[2] ?? '').toLowerCase()];
  return Number.isSafeInteger(Math.round(ms)) ? Math.round(ms) : undefined;
}

/** Milliseconds from a duration, at least `minMs`. */
function duration(name: string, minMs: number) {
  return (text: string): number => {
    const ms = parseDuration(text);
    if (ms === undefined || ms < minMs) {
      throw usage(`${name} must be a duration of at least ${minMs} ms, such as 3000, 3s, 5m, 2h or 1d, not '${text}'`);
    }
    return ms;
  };
}

const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };

export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw usage(`body limit must be a size such as 32MiB or 1048576, not '${text}'`);
  return Math.floor(Number(m[1]) * unit);
}

function bool(name: string) {
  return (text: string): boolean => {
    if (/^(1|true|yes|on)$/i.test(text)) return true;
    if (/^(0|false|no|off)$/i.test(text)) return false;
    throw usage(`${name} must be true or false, not '${text}'`);
  };
}

/**
 * An OpenSSL cipher list, checked by OpenSSL itself, so that a typo stops the start with one line
 * rather than a stack trace. OpenSSL skips a name it does not know as long as another one matches;
 * a misspelt suite would then be missing in silence, so each name that adds suites must match alone.
 */
function cipherList(t: string): string {
  const ciphers = t.trim();
  // Node would take an empty list as "its defaults", which is not what anyone asking for a list means.
  if (!ciphers) throw usage('tls-ciphers must name at least one cipher suite, such as ECDHE-RSA-AES128-GCM-SHA256');
  const matches = (list: string): boolean => {
    try {
      createSecureContext({ ciphers: list });
      return true;
    } catch {
      return false;
    }
  };
  const unknown = ciphers.split(/[:, ]+/).filter((name) => name && !/^[!+@-]/.test(name) && !matches(name));
  if (unknown.length || !matches(ciphers)) {
    const what = unknown.length ? `${unknown.map((n) => `'${n}'`).join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not known to OpenSSL` : 'it leaves no cipher suite';
    throw usage(`tls-ciphers '${ciphers}' is not usable: ${what}; give names as "openssl ciphers -s -v" prints them, separated by ':'`);
  }
  return ciphers;
}

/** Days (a plain number, as SPEC §10.1 counts retention) or a duration with a unit. */
function days(name: string) {
  return (text: string): number => {
    if (/^\s*\d+\s*$/.test(text)) {
      const n = Number(text);
      if (n >= 1 && n <= 36_500) return n * 86_400_000;
    } else {
      const ms = parseDuration(text);
      if (ms !== undefined && ms >= 60_000) return ms;
    }
    throw usage(`${name} must be a number of days from 1 (30 means 30 days) or a duration of at least 1m such as 12h, not '${text}'`);
  };
}

/** A comma-separated list of durations, each at least `minMs`. */
function durations(name: string, minMs: number) {
  return (text: string): number[] => {
    const parts = text.split(',').map((p) => p.trim());
    const values = parts.map((p) => parseDuration(p));
    if (parts.length === 0 || values.some((ms) => ms === undefined || ms < minMs)) {
      throw usage(`${name} must be a comma-separated list of durations of at least ${minMs} ms, such as 5s,5m,30m,2h, not '${text}'`);
    }
    return values as number[];
  };
}

/** A time of day, HH:MM (24-hour). */
function timeOfDay(name: string) {
  return (text: string): string => {
    const m = /^\s*(\d{1,2}):(\d{2})\s*$/.exec(text);
    if (!m || Number(m[1]) > 23 || Number(m[2]) > 59) throw usage(`${name} must be a time of day HH:MM such as 02:30, not '${text}'`);
    return `${m[1].padStart(2, '0')}:${m[2]}`;
  };
}

/** Host names or addresses, comma-separated, lower-cased; IPv6 addresses may be given in brackets. */
function hostList(text: string): string[] {
  return text
    .split(',')
    .map((h) => h.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1'))
    .filter((h) => h.length > 0);
}

const text = (t: string): string => t;
const nullableText = (t: string): string | null => t || null;

export const SETTINGS: { [K in keyof Config]: Setting<K> } = {
  port: { key: 'port', flag: 'port', env: 'FLEXI_PORT', help: 'HTTPS port (default 7000; 0 picks a free one)', read: integer('port', 0, 65535) },
  host: { key: 'host', flag: 'host', env: 'FLEXI_HOST', help: 'bind address (default 0.0.0.0)', read: text },
  db: { key: 'db', flag: 'db', env: 'FLEXI_DB', help: 'store: a SQLite file path or a postgres:// URL (default data/flexi-admin.db)', read: text },
  certs: { key: 'certs', flag: 'certs', env: 'FLEXI_CERTS', help: 'certificate folder (default certs)', read: text },
  serverAuth: { key: 'serverAuth', flag: 'server-auth', env: 'FLEXI_SERVER_AUTH', help: 'server-auth properties XML with username and password (default: none, password login off)', read: nullableText },
  passwordAuth: { key: 'passwordAuth', flag: 'password-auth', env: 'FLEXI_PASSWORD_AUTH', boolean: true, help: 'accept the server-auth password (--no-password-auth switches it off)', read: bool('password-auth') },
  clientCa: { key: 'clientCa', flag: 'client-ca', env: 'FLEXI_CLIENT_CA', help: 'also require client certificate chains to verify against this CA file', read: nullableText },
  devPki: { key: 'devPki', flag: 'dev-pki', env: 'FLEXI_DEV_PKI', boolean: true, help: 'create missing dev certificates and register the dev client on start (--no-dev-pki for production)', read: bool('dev-pki') },
  bodyLimit: { key: 'bodyLimit', flag: 'body-limit', env: 'FLEXI_BODY_LIMIT', help: 'largest accepted body (default 32MiB)', read: parseSize },
  maxOperations: { key: 'maxOperations', flag: 'max-operations', env: 'FLEXI_MAX_OPERATIONS', help: 'most operations in one batch (default 100000)', read: integer('max-operations', 1) },
  logLevel: {
    key: 'logLevel', flag: 'log-level', env: 'FLEXI_LOG_LEVEL', help: `log level: ${LOG_LEVELS.join(', ')} (default info)`,
    read: (t) => {
      if (!(LOG_LEVELS as readonly string[]).includes(t)) throw usage(`log level must be one of ${LOG_LEVELS.join(', ')}, not '${t}'`);
      return t as LogLevel;
    },
  },
  passwordHash: {
    key: 'passwordHash', flag: 'password-hash', env: 'FLEXI_PASSWORD_HASH', help: `algorithm for plain-text passwords: ${HASH_ALGORITHMS.join(', ')} (default sha256; pbkdf2 recommended)`,
    read: (t) => {
      if (!isHashAlgorithm(t)) throw usage(`password hash must be one of ${HASH_ALGORITHMS.join(', ')}, not '${t}'`);
      return t;
    },
  },
  pbkdf2Iterations: { key: 'pbkdf2Iterations', flag: 'pbkdf2-iterations', env: 'FLEXI_PBKDF2_ITERATIONS', help: `PBKDF2 iterations for new hashes, at most ${MAX_PBKDF2_ITERATIONS} (default ${DEFAULT_PBKDF2_ITERATIONS})`, read: integer('pbkdf2-iterations', 1, MAX_PBKDF2_ITERATIONS) },
  requestTimeoutMs: { key: 'requestTimeoutMs', flag: 'request-timeout', env: 'FLEXI_REQUEST_TIMEOUT', help: 'how long a client has to send its whole request (default 60s)', read: duration('request-timeout', 1000) },
  shutdownTimeoutMs: { key: 'shutdownTimeoutMs', flag: 'shutdown-timeout', env: 'FLEXI_SHUTDOWN_TIMEOUT', help: 'on SIGTERM, how long clients still sending a request get to finish it, and an answer may make no progress (at least 1s); received batches always finish (default 30s)', read: duration('shutdown-timeout', 0) },
  sessionIdleMs: { key: 'sessionIdleMs', flag: 'session-idle', env: 'FLEXI_SESSION_IDLE', help: 'how long a login session may stay unused before it expires (default 30m)', read: duration('session-idle', 1000) },
  authMaxFailures: { key: 'authMaxFailures', flag: 'auth-max-failures', env: 'FLEXI_AUTH_MAX_FAILURES', help: 'failed authentications one address may make per window before 429 (default 10)', read: integer('auth-max-failures', 1) },
  authMaxFailuresPerUser: {
    key: 'authMaxFailuresPerUser', flag: 'auth-max-failures-per-user', env: 'FLEXI_AUTH_MAX_FAILURES_PER_USER',
    help: 'failed password checks one username may get per window, from all addresses together, before 429 (default 30)', read: integer('auth-max-failures-per-user', 1),
  },
  authFailureWindowMs: { key: 'authFailureWindowMs', flag: 'auth-failure-window', env: 'FLEXI_AUTH_FAILURE_WINDOW', help: 'the length of that window (default 60s)', read: duration('auth-failure-window', 1000) },
  passwordCheckConcurrency: {
    key: 'passwordCheckConcurrency', flag: 'password-check-concurrency', env: 'FLEXI_PASSWORD_CHECK_CONCURRENCY',
    help: 'login password checks hashing at the same time (default 2)', read: integer('password-check-concurrency', 1, 64),
  },
  passwordCheckQueue: {
    key: 'passwordCheckQueue', flag: 'password-check-queue', env: 'FLEXI_PASSWORD_CHECK_QUEUE',
    help: 'login password checks that may wait for one; more get 503 with Retry-After (default 32)', read: integer('password-check-queue', 0, 100_000),
  },
  dbPool: { key: 'dbPool', flag: 'db-pool', env: 'FLEXI_DB_POOL', help: 'PostgreSQL connection pool size per process (default 10)', read: integer('db-pool', 1, 1000) },
  tlsCiphers: { key: 'tlsCiphers', flag: 'tls-ciphers', env: 'FLEXI_TLS_CIPHERS', help: "OpenSSL cipher list for TLS 1.2 (TLS_… names set the TLS 1.3 suites; default Mozilla's intermediate: ECDHE with AES-GCM or ChaCha20)", read: cipherList },
  tlsMinVersion: {
    key: 'tlsMinVersion', flag: 'tls-min-version', env: 'FLEXI_TLS_MIN_VERSION', help: `oldest TLS version accepted: ${TLS_VERSIONS.join(' or ')} (default TLSv1.2)`,
    read: (t) => {
      if (!(TLS_VERSIONS as readonly string[]).includes(t)) throw usage(`tls-min-version must be one of ${TLS_VERSIONS.join(', ')}, not '${t}'`);
      return t as TlsVersion;
    },
  },
  tasks: { key: 'tasks', flag: 'tasks', env: 'FLEXI_TASKS', boolean: true, help: 'run the task runner (date actions, webhook deliveries) inside serve (--no-tasks when a separate "flexi-admin tasks" runs it)', read: bool('tasks') },
  taskLeaseMs: { key: 'taskLeaseMs', flag: 'task-lease', env: 'FLEXI_TASK_LEASE', help: 'how long the one task runner of a store holds its lease; another takes over within it (default 30s)', read: duration('task-lease', 1000) },
  taskTime: { key: 'taskTime', flag: 'task-time', env: 'FLEXI_TASK_TIME', help: 'when the date actions run each day, server local time (default 02:30; also when the runner starts)', read: timeOfDay('task-time') },
  eventRetentionMs: { key: 'eventRetentionMs', flag: 'event-retention', env: 'FLEXI_EVENT_RETENTION', help: 'how long events are kept: days, or a duration such as 12h (default 30; events a subscription has not had yet are kept)', read: days('event-retention') },
  webhookMaxEvents: { key: 'webhookMaxEvents', flag: 'webhook-max-events', env: 'FLEXI_WEBHOOK_MAX_EVENTS', help: 'most events combined into one webhook delivery (default 100)', read: integer('webhook-max-events', 1, 10_000) },
  webhookTimeoutMs: { key: 'webhookTimeoutMs', flag: 'webhook-timeout', env: 'FLEXI_WEBHOOK_TIMEOUT', help: 'how long a webhook endpoint has to answer a delivery (default 10s)', read: duration('webhook-timeout', 100) },
  webhookRetryMs: { key: 'webhookRetryMs', flag: 'webhook-retry', env: 'FLEXI_WEBHOOK_RETRY', help: 'waits before the retries of a failed delivery; after the last the subscription is suspended (default 5s,5m,30m,2h,5h,10h,10h)', read: durations('webhook-retry', 0) },
  webhookSecretOverlapMs: { key: 'webhookSecretOverlapMs', flag: 'webhook-secret-overlap', env: 'FLEXI_WEBHOOK_SECRET_OVERLAP', help: 'how long a replaced webhook secret still signs deliveries beside the new one (default 24h)', read: duration('webhook-secret-overlap', 0) },
  webhookAllowHosts: { key: 'webhookAllowHosts', flag: 'webhook-allow-hosts', env: 'FLEXI_WEBHOOK_ALLOW_HOSTS', help: 'comma-separated hosts that webhooks may reach although they are loopback or private addresses; http:// is allowed for them (default none)', read: hostList },
};

export const DEFAULTS: Config = {
  port: 7000,
  host: '0.0.0.0',
  db: 'data/flexi-admin.db',
  certs: 'certs',
  serverAuth: null,
  passwordAuth: true,
  clientCa: null,
  devPki: true,
  bodyLimit: 32 * 1024 * 1024,
  maxOperations: 100_000,
  logLevel: 'info',
  passwordHash: 'sha256',
  pbkdf2Iterations: DEFAULT_PBKDF2_ITERATIONS,
  requestTimeoutMs: 60_000,
  shutdownTimeoutMs: 30_000,
  sessionIdleMs: 30 * 60_000,
  authMaxFailures: 10,
  authMaxFailuresPerUser: 30,
  authFailureWindowMs: 60_000,
  passwordCheckConcurrency: 2,
  passwordCheckQueue: 32,
  dbPool: 10,
  tlsCiphers: TLS_CIPHERS_INTERMEDIATE,
  tlsMinVersion: 'TLSv1.2',
  tasks: true,
  taskLeaseMs: 30_000,
  taskTime: '02:30',
  eventRetentionMs: 30 * 86_400_000,
  webhookMaxEvents: 100,
  webhookTimeoutMs: 10_000,
  webhookRetryMs: ['5s', '5m', '30m', '2h', '5h', '10h', '10h'].map((d) => parseDuration(d) as number),
  webhookSecretOverlapMs: 24 * 3_600_000,
  webhookAllowHosts: [],
};

/** How plain-text passwords are hashed, as --password-hash and --pbkdf2-iterations say. */
export function hashPolicyOf(config: Config): HashPolicy {
  return { algorithm: config.passwordHash, pbkdf2Iterations: config.pbkdf2Iterations };
}

export function usage(message: string): FlexiError {
  return new FlexiError('usage', message);
}

type Sources = { flags: Record<string, string | boolean | undefined>; env: NodeJS.ProcessEnv; configFile?: string };

/** flags > environment > config file (JSON, keys as in Config or as flags) > defaults; validated once. */
export function loadConfig({ flags, env, configFile }: Sources): Config {
  const fileValues = readConfigFile(configFile ?? (typeof flags.config === 'string' ? flags.config : env.FLEXI_CONFIG));
  const config = { ...DEFAULTS } as Record<keyof Config, unknown>;
  for (const setting of Object.values(SETTINGS) as Setting<keyof Config>[]) {
    const flag = flags[setting.flag];
    const raw =
      flag !== undefined ? String(flag)
      : env[setting.env] !== undefined && env[setting.env] !== '' ? env[setting.env]
      : fileValues.get(setting.key) ?? fileValues.get(setting.flag);
    if (raw !== undefined) config[setting.key] = setting.read(String(raw));
  }
  const result = config as unknown as Config;
  if (!/^postgres(ql)?:\/\//i.test(result.db) && result.db !== ':memory:') result.db = resolve(result.db);
  result.certs = resolve(result.certs);
  return result;
}

function readConfigFile(path: string | undefined): Map<string, string> {
  const values = new Map<string, string>();
  if (!path) return values;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new FlexiError('config', `Cannot read the config file ${path}: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new FlexiError('config', `The config file ${path} must hold one JSON object.`);
  }
  const known = Object.values(SETTINGS) as Setting<keyof Config>[];
  for (const [key, value] of Object.entries(parsed)) {
    // A misspelt key would otherwise be ignored in silence and the default used instead.
    if (!known.some((s) => s.key === key || s.flag === key)) {
      throw new FlexiError('config', `The config file ${path} has an unknown setting '${key}'; known settings: ${known.map((s) => s.flag).join(', ')}.`);
    }
    if (value === null) continue;
    if (!['string', 'number', 'boolean'].includes(typeof value)) {
      throw new FlexiError('config', `The setting '${key}' in the config file ${path} must be a string, a number or a boolean.`);
    }
    values.set(key, String(value));
  }
  return values;
}
