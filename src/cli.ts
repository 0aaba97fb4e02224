import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BatchExecutor } from './batch/execute';
import { hashPolicyOf, loadConfig, SETTINGS, usage, type Config } from './config';
import { ROOT_GROUP } from './domain/principals';
import { FlexiError, isFlexiError } from './errors';
import { createLogger, type Logger } from './log';
import { ensureDevPki } from './pki/dev-pki';
import { normalizeFingerprint } from './pki/fingerprint';
import { startServer } from './server/server';
import { createJobs, createTaskRunner } from './tasks/jobs';
import { localDate } from './tasks/runner';
import { isCalendarDate } from './domain/fields';
import { openStore } from './store/open-store';
import type { Store } from './store/store';

interface Command {
  usage: string;
  summary: string;
  positionals: number;
  run(args: string[], flags: Flags, config: Config): Promise<number>;
}

type Flags = Record<string, string | boolean | undefined>;

const out = (line: string): void => void process.stdout.write(`${line}\n`);
const err = (line: string): void => void process.stderr.write(`${line}\n`);

function fingerprintArgument(raw: string): string {
  try {
    return normalizeFingerprint(raw);
  } catch (e) {
    throw usage((e as Error).message);
  }
}

/** `--date YYYY-MM-DD` of the tasks commands, checked. */
function dateFlag(flags: Flags): string | undefined {
  const date = flags.date;
  if (date === undefined) return undefined;
  if (typeof date !== 'string' || !isCalendarDate(date)) throw usage(`--date must be a date YYYY-MM-DD such as 2026-12-31, not '${String(date)}'`);
  return date;
}

/**
 * Resolves with the exit code once the first SIGTERM or SIGINT has run `stop`: 0, or 1 when it
 * failed. The handlers stay: a second signal must not kill the process half-way through
 * stopping; it is passed to `onRepeat`, if given, and otherwise ignored.
 */
function untilSignalled(
  logger: Logger,
  messages: { stopping: string; failed: string },
  stop: () => Promise<void>,
  onRepeat?: (signal: NodeJS.Signals) => void,
): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) return onRepeat?.(signal);
      stopping = true;
      logger.info(messages.stopping, { signal });
      stop().then(
        () => resolve(0),
        (e: unknown) => {
          logger.error(messages.failed, { error: e instanceof Error ? e.message : String(e) });
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

async function withStore<T>(config: Config, work: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(config.db, { poolSize: config.dbPool });
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

const COMMANDS: Record<string, Command> = {
  serve: {
    usage: 'serve',
    summary: 'run the HTTPS server (creates the dev PKI on first start)',
    positionals: 0,
    async run(_args, _flags, config) {
      const logger = createLogger(config.logLevel);
      const server = await startServer(config, logger);
      // The handlers go in before the announcement: whoever waits for it may signal at once.
      // The shutdown timeout bounds the shutdown; a repeated signal is only noted.
      const stopped = untilSignalled(logger, { stopping: 'shutting down', failed: 'shutdown failed' }, () => server.close(), (signal) =>
        logger.info('already shutting down', { signal, shutdownTimeoutMs: config.shutdownTimeoutMs }),
      );
      err(`flexi-admin is listening on https://${config.host}:${server.port} (store: ${server.store.kind})`);
      err(`try: ${server.curlLine}`);
      return stopped;
    },
  },
  'certs init': {
    usage: 'certs init',
    summary: 'create the missing files of the dev PKI in the certificate folder (never overwrites)',
    positionals: 0,
    async run(_args, _flags, config) {
      const { paths, created } = ensureDevPki(config.certs);
      out(created.length ? `created ${created.join(', ')} in ${paths.dir}` : `all certificates already exist in ${paths.dir}`);
      return 0;
    },
  },
  'fingerprint add': {
    usage: 'fingerprint add <sha1> [--scope GROUP] [--label TEXT]',
    summary: 'trust a client certificate by its SHA1 fingerprint (AB:CD:…, abcd…, or openssl\'s "SHA1 Fingerprint=…")',
    positionals: 1,
    async run([raw], flags, config) {
      const fingerprint = fingerprintArgument(raw);
      const scope = typeof flags.scope === 'string' ? flags.scope : ROOT_GROUP;
      const label = typeof flags.label === 'string' ? flags.label : null;
      return withStore(config, async (store) => {
        // SPEC §7.6: exit 1 with the reason; the usage was right, the store lacks the group.
        if (!(await store.groupExists(scope))) {
          err(`flexi-admin: license group '${scope}' does not exist`);
          return 1;
        }
        const result = await store.addFingerprint({ fingerprint, scope, label });
        out(`${result} ${fingerprint} (scope ${scope}${label ? `, label "${label}"` : ''})`);
        return 0;
      });
    },
  },
  'fingerprint list': {
    usage: 'fingerprint list',
    summary: 'list registered fingerprints with scope, label and state',
    positionals: 0,
    async run(_args, _flags, config) {
      return withStore(config, async (store) => {
        for (const f of await store.listFingerprints()) {
          const state = f.revokedAt ? `revoked ${f.revokedAt}` : 'active';
          out(`${f.fingerprint}\t${f.scope}\t${state}\t${f.label ?? ''}`);
        }
        return 0;
      });
    },
  },
  'fingerprint revoke': {
    usage: 'fingerprint revoke <sha1>',
    summary: 'stop trusting a fingerprint (takes effect on the next request)',
    positionals: 1,
    async run([raw], _flags, config) {
      const fingerprint = fingerprintArgument(raw);
      return withStore(config, async (store) => {
        if (!(await store.revokeFingerprint(fingerprint))) {
          err(`flexi-admin: ${fingerprint} is not an active registered fingerprint`);
          return 1;
        }
        out(`revoked ${fingerprint}`);
        return 0;
      });
    },
  },
  'batch apply': {
    usage: 'batch apply FILE',
    summary: 'apply a batch file directly to the store as the root principal "cli" and print the result XML',
    positionals: 1,
    async run([file], _flags, config) {
      let body: string;
      try {
        body = readFileSync(file, 'utf8');
      } catch (e) {
        throw usage(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      return withStore(config, async (store) => {
        const executor = new BatchExecutor(store, {
          maxOperations: config.maxOperations,
          hashPolicy: hashPolicyOf(config),
          webhookAllowHosts: config.webhookAllowHosts,
        });
        let outcome;
        try {
          outcome = await executor.execute(body, { kind: 'cli', name: 'cli', scope: ROOT_GROUP });
        } catch (e) {
          // The message was written for HTTP clients ("The body …"); name the file instead.
          if (isFlexiError(e) && e.code !== 'store-unavailable' && e.code !== 'store-gone') throw new FlexiError(e.code, `${file} was rejected, nothing applied: ${e.message}`);
          throw e;
        }
        process.stdout.write(outcome.xml);
        return 0;
      });
    },
  },
  tasks: {
    usage: 'tasks',
    summary: 'run the task runner alone (date actions, webhook deliveries) until SIGTERM; one per store holds the lease',
    positionals: 0,
    async run(_args, _flags, config) {
      const logger = createLogger(config.logLevel);
      const store = await openStore(config.db, { poolSize: config.dbPool });
      const runner = createTaskRunner({ store, config, logger });
      runner.start();
      err(`flexi-admin task runner started (store: ${store.kind}, holder ${runner.holder})`);
      return untilSignalled(logger, { stopping: 'task runner stopping', failed: 'task runner shutdown failed' }, async () => {
        await runner.stop();
        await store.close();
      });
    },
  },
  'tasks run-once': {
    usage: 'tasks run-once [--date YYYY-MM-DD]',
    summary: 'run the date actions due now (or due on --date) and the deliveries that can be made, then exit',
    positionals: 0,
    async run(_args, flags, config) {
      const date = dateFlag(flags);
      const logger = createLogger(config.logLevel);
      return withStore(config, async (store) => {
        const runner = createTaskRunner({ store, config, logger });
        if (!(await runner.runOnce(date))) {
          err(`flexi-admin: another task runner holds the lease of this store; it runs the tasks (try again after it stops, or within ${config.taskLeaseMs} ms of its end)`);
          return 1;
        }
        return 0;
      });
    },
  },
  'tasks plan': {
    usage: 'tasks plan [--date YYYY-MM-DD]',
    summary: 'print what the date actions would do on that date (default today); changes nothing',
    positionals: 0,
    async run(_args, flags, config) {
      const date = dateFlag(flags) ?? localDate();
      return withStore(config, async (store) => {
        const { dates } = createJobs({ store, config, logger: createLogger('silent') });
        const lines = dates ? await dates.plan(date) : [];
        out(lines.length ? lines.join('\n') : `nothing to do on ${date}`);
        return 0;
      });
    },
  },
  migrate: {
    usage: 'migrate',
    summary: 'apply pending schema migrations to the store and exit',
    positionals: 0,
    async run(_args, _flags, config) {
      await withStore(config, async () => undefined);
      out(`store ${config.db.replace(/\/\/[^@/]*@/, '//***@')} is up to date`);
      return 0;
    },
  },
};

/** The version in package.json, which sits beside dist/ and src/ alike. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
}

function optionSpec() {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'V' },
    config: { type: 'string' },
    scope: { type: 'string' },
    label: { type: 'string' },
    date: { type: 'string' },
  };
  for (const s of Object.values(SETTINGS)) {
    options[s.flag] = { type: s.boolean ? 'boolean' : 'string' };
    if (s.boolean) options[`no-${s.flag}`] = { type: 'boolean' };
  }
  return options;
}

const option = (name: string, text: string): string => `  ${name.padEnd(28)}${text}`;

function optionsHelp(): string {
  return [
    ...Object.values(SETTINGS).map((s) => option(`--${s.boolean ? `[no-]${s.flag}` : `${s.flag} VALUE`}`, `${s.help} [${s.env}]`)),
    option('--config FILE', 'JSON file of settings, keyed as the flags above [FLEXI_CONFIG]'),
    option('-h, --help', 'show this help'),
    option('-V, --version', 'print the version of flexi-admin'),
  ].join('\n');
}

/** The commands whose first word is `group` ("fingerprint" → add, list, revoke). */
function commandsOf(group: string): string[] {
  return Object.keys(COMMANDS).filter((name) => name.startsWith(`${group} `));
}

function commandList(names: string[]): string {
  const width = Math.max(...names.map((n) => COMMANDS[n].usage.length)) + 2;
  return names.map((n) => `  ${COMMANDS[n].usage.padEnd(width)}${COMMANDS[n].summary}`).join('\n');
}

/** Help for one command, for a group of commands ("fingerprint"), or for all of them. */
function help(topic?: string): string {
  const head =
    topic && Object.hasOwn(COMMANDS, topic) ? `usage: flexi-admin ${COMMANDS[topic].usage} [options]\n\n${COMMANDS[topic].summary}\n`
    : topic ? `usage: flexi-admin ${topic} <${commandsOf(topic).map((n) => n.slice(topic.length + 1)).join('|')}> [options]\n\ncommands:\n${commandList(commandsOf(topic))}\n`
    : `usage: flexi-admin <command> [options]\n\ncommands:\n${commandList(Object.keys(COMMANDS))}\n`;
  return `${head}\noptions (flags win over environment variables, which win over the --config file):\n${optionsHelp()}\n`;
}

function findCommand(positionals: string[]): [string, string[]] | undefined {
  for (const words of [2, 1]) {
    const name = positionals.slice(0, words).join(' ');
    if (Object.hasOwn(COMMANDS, name)) return [name, positionals.slice(words)];
  }
  return undefined;
}

/** Entry point of the `flexi-admin` binary; resolves to the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options: optionSpec(), allowPositionals: true, strict: true });
    } catch (e) {
      throw usage((e as Error).message.split('\n')[0].replace(/\. To specify a positional.*$/, ''));
    }
    const flags: Flags = { ...parsed.values };
    for (const s of Object.values(SETTINGS)) {
      if (s.boolean && flags[`no-${s.flag}`]) flags[s.flag] = 'false';
      else if (s.boolean && flags[s.flag] === true) flags[s.flag] = 'true';
    }
    if (flags.version) {
      out(packageVersion());
      return 0;
    }
    const found = findCommand(parsed.positionals);
    if (!found) {
      const [first, ...rest] = parsed.positionals;
      const group = first !== undefined && rest.length === 0 && commandsOf(first).length > 0 ? first : undefined;
      if (flags.help && (first === undefined || group)) {
        process.stdout.write(help(group));
        return 0;
      }
      if (first === undefined) throw usage('no command given; run flexi-admin --help for the list of commands');
      if (group) {
        const names = commandsOf(group).map((n) => n.slice(group.length + 1));
        throw usage(`${group} needs one of the subcommands ${names.join(', ')}; run flexi-admin ${group} --help`);
      }
      throw usage(`unknown command '${parsed.positionals.join(' ')}'; run flexi-admin --help`);
    }
    const [name, args] = found;
    if (flags.help) {
      process.stdout.write(help(name));
      return 0;
    }
    const command = COMMANDS[name];
    if (args.length !== command.positionals) {
      throw usage(`${name} takes ${command.positionals || 'no'} argument${command.positionals === 1 ? '' : 's'}: flexi-admin ${command.usage}`);
    }
    if ((flags.scope !== undefined || flags.label !== undefined) && name !== 'fingerprint add') {
      throw usage('--scope and --label belong to fingerprint add');
    }
    if (flags.date !== undefined && name !== 'tasks plan' && name !== 'tasks run-once') throw usage('--date belongs to tasks plan and tasks run-once');
    const config = loadConfig({ flags, env });
    return await command.run(args, flags, config);
  } catch (e) {
    if (isFlexiError(e)) {
      err(`flexi-admin: ${e.message}`);
      return e.code === 'usage' ? 2 : 1;
    }
    throw e;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      err(`flexi-admin: ${e instanceof Error ? e.message : String(e)}`);
      process.exitCode = 1;
    },
  );
}
