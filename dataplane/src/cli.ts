/**
 * `doorman CONFIG` runs the data plane; `doorman check CONFIG` validates a config file.
 */
import { closeSync, fchmodSync, openSync, writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError } from '@doorman/proto';
import { loadConfig, type LoadedConfig } from './config/load.js';
import { generateConfig } from './config/generate.js';
import { introspect } from './config/introspect.js';
import { Doorman } from './doorman.js';
import { DoormanHost } from './agent/doorman-host.js';
import { AgentError } from './agent/errors.js';
import { agentOptions, type AgentFlags } from './agent/options.js';
import { runAgent } from './agent/run.js';
import { createLogger, type LogLevel } from './log.js';
import { UPGRADE_ENV } from './upgrade/messages.js';
import { notifySystemd, writePidFile } from './upgrade/process-files.js';
import { VERSION } from './version.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

function fail(err: unknown, what: string): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`doorman: invalid configuration in ${what}:\n${err.issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}\n`);
  } else {
    process.stderr.write(`doorman: ${(err as Error).message}\n`);
  }
  process.exit(2);
}

function loadOrExit(configPath: string): { loaded: LoadedConfig; warnings: string[] } {
  const warnings: string[] = [];
  try {
    return { loaded: loadConfig(configPath, (path, message) => warnings.push(`${path}: ${message}`)), warnings };
  } catch (err) {
    fail(err, configPath);
  }
}

interface GenerateCliOptions {
  host: string;
  port: number;
  user: string;
  database: string;
  passwordEnv: string;
  output?: string;
  poolSize: number;
  poolMode: 'transaction' | 'session';
  listenPort: number;
}

function intOption(v: string, name: string, min: number, max: number): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
  return n;
}

/** The generated file may hold password verifiers: owner-only, also when it already existed. */
function writeSecretFile(path: string, text: string): void {
  const fd = openSync(path, 'w', 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeFileSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

const program = new Command()
  .name('doorman')
  .description('Doorman data plane: a PostgreSQL connection pooler (session and transaction pooling)')
  .version(VERSION)
  .argument('[config]', 'YAML config file (default doorman.yaml; none in agent mode)')
  .addOption(new Option('-l, --log-level <level>', 'log level (overrides general.log_level)').choices(LEVELS))
  .addOption(new Option('-F, --log-format <format>', 'log format (default: pretty on a terminal, JSON otherwise)').choices(['json', 'pretty']))
  .option('--control-plane <host:port,...>', 'agent mode: take the config from these control-plane replicas instead of a file')
  .option('--node-id <id>', 'agent mode: this node\'s id in the fleet')
  .option('--labels <k=v,...>', 'agent mode: node labels (host, datacenter, cluster, ...)')
  .option('--listen <host:port>', 'agent mode: listen here whatever general.host/port the control plane sends')
  .option('--state-dir <dir>', 'agent mode: keep the last accepted config here and boot from it when no control plane answers')
  .option('--ca <file>', 'agent mode: CA certificate of the control plane')
  .option('--cert <file>', 'agent mode: this node\'s client certificate')
  .option('--key <file>', 'agent mode: this node\'s client certificate key')
  .option('--insecure', 'agent mode: plaintext to the control plane (local development only)')
  .addOption(new Option('--pid-file <file>', 'write the process id here (replaced atomically; a binary upgrade rewrites it)').env('DOORMAN_PID_FILE'))
  .addOption(new Option('--upgrade-binary <file>', 'what SIGUSR2 / UPGRADE starts (default: this same launcher, e.g. after a package update)').env('DOORMAN_UPGRADE_BINARY'))
  .option('--initial-wait <duration>', 'agent mode: how long to wait for the control plane before using the last accepted config', '10s')
  .showHelpAfterError()
  .action(async (configArg: string | undefined, opts: { logLevel?: LogLevel; logFormat?: 'json' | 'pretty'; pidFile?: string; upgradeBinary?: string } & Partial<AgentFlags>) => {
    if (opts.controlPlane !== undefined) {
      if (configArg !== undefined) fail(new Error('a config file and --control-plane exclude each other'), 'the command line');
      let agentOpts;
      try {
        agentOpts = agentOptions(opts as AgentFlags);
      } catch (err) {
        if (err instanceof AgentError) fail(err, 'the command line');
        throw err;
      }
      const log = createLogger(opts.logLevel ?? 'info', opts.logFormat ?? null);
      await runAgent(agentOpts, log, (controls) => new DoormanHost(log, controls, opts));
      return;
    }
    const configPath = configArg ?? 'doorman.yaml';
    const { loaded, warnings } = loadOrExit(configPath);
    const g = loaded.config.general;
    const log = createLogger(opts.logLevel ?? g.logLevel, opts.logFormat ?? g.logFormat);
    for (const w of warnings) log.warn(w);
    const reload = (): void => {
      try {
        doorman.reload(loadConfig(configPath, (path, message) => log.warn(`${path}: ${message}`)));
      } catch (err) {
        log.error({ err: (err as Error).message }, 'reload failed; keeping the current configuration');
      }
    };
    const upgrade = (): void => {
      const target = { binary: opts.upgradeBinary ?? process.argv[1], args: process.argv.slice(2), configPath };
      log.info({ binary: target.binary }, 'upgrade: starting the new binary');
      doorman.upgrade(target).then(
        (newPid) => log.info({ newPid }, 'upgrade: handed over'),
        (err: Error) => log.error({ err: err.message }, 'upgrade refused; still serving'),
      );
    };
    const doorman = new Doorman(loaded, log, { reload, shutdown: () => stop(true), upgrade }, opts);
    // Started by a binary upgrade: the listening socket comes from the old process.
    const inherited = process.env[UPGRADE_ENV] === '1' && process.send !== undefined;
    try {
      await (inherited ? doorman.inherit() : doorman.listen());
    } catch (err) {
      log.fatal({ err: (err as Error).message }, 'cannot listen');
      process.exit(1);
    }
    if (opts.pidFile !== undefined) writePidFile(opts.pidFile);
    notifySystemd();
    const stop = (graceful: boolean): void => {
      void doorman.shutdown(graceful).then(() => {
        log.info('bye');
        process.exit(0);
      });
    };
    process.on('SIGTERM', () => stop(true));
    process.on('SIGINT', () => stop(false));
    process.on('SIGHUP', reload);
    process.on('SIGUSR2', upgrade);
  });

program
  .command('check')
  .description('validate a config file; exits non-zero with every problem found')
  .argument('<config>', 'YAML config file')
  .option('--print', 'print the effective config with defaults filled in (secrets hidden)')
  .action((configPath: string, opts: { print?: boolean }) => {
    const { loaded, warnings } = loadOrExit(configPath);
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
    if (opts.print) {
      const hide = (k: string, v: unknown): unknown => (/password/i.test(k) && typeof v === 'string' && v !== '' ? '[set]' : v);
      process.stdout.write(JSON.stringify(loaded.config, hide, 2) + '\n');
    } else {
      const pools = Object.values(loaded.config.pools);
      process.stdout.write(`${configPath}: OK (${pools.length} pool(s), ${pools.reduce((n, p) => n + p.users.length, 0)} user(s))\n`);
    }
  });

program
  .command('generate')
  .description('write a config pooling every database and login role of a running PostgreSQL')
  .requiredOption('--host <host>', 'PostgreSQL host (or Unix-socket directory)')
  .option('--port <port>', 'PostgreSQL port', (v) => intOption(v, '--port', 1, 65535), 5432)
  .requiredOption('--user <user>', 'role to connect as (a superuser can also copy password verifiers)')
  .option('--database <database>', 'database to connect to', 'postgres')
  .option('--password-env <var>', 'environment variable holding the password', 'PGPASSWORD')
  .option('--output <file>', 'write here (mode 0600) instead of stdout')
  .option('--pool-size <n>', 'pool_size of every user', (v) => intOption(v, '--pool-size', 1, 1_000_000), 40)
  .addOption(new Option('--pool-mode <mode>', 'pool_mode of every pool').choices(['transaction', 'session']).default('transaction'))
  .option('--listen-port <port>', 'general.port of the generated config', (v) => intOption(v, '--listen-port', 1, 65535), 6432)
  .action(async (opts: GenerateCliOptions) => {
    try {
      const catalog = await introspect({
        host: opts.host,
        port: opts.port,
        user: opts.user,
        database: opts.database,
        password: process.env[opts.passwordEnv],
        passwordSource: opts.passwordEnv,
        connectTimeoutMs: 10_000,
      });
      if (!catalog.verifiersRead) {
        process.stderr.write(`warning: "${opts.user}" cannot read pg_authid: users get empty placeholder passwords\n`);
      }
      const text = generateConfig(catalog, {
        serverHost: opts.host,
        serverPort: opts.port,
        connectedUser: opts.user,
        listenPort: opts.listenPort,
        poolMode: opts.poolMode,
        poolSize: opts.poolSize,
      });
      if (opts.output === undefined) {
        process.stdout.write(text);
      } else {
        writeSecretFile(opts.output, text);
        process.stderr.write(`${opts.output}: ${catalog.databases.length} database(s), ${catalog.roles.length} login role(s)\n`);
      }
    } catch (err) {
      fail(err, opts.output ?? 'the generated config');
    }
  });

await program.parseAsync(process.argv);
