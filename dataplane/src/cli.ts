/**
 * `doorman CONFIG` runs the data plane; `doorman check CONFIG` validates a config file.
 */
import { Command, Option } from 'commander';
import { ConfigError } from '@doorman/proto';
import { loadConfig, type LoadedConfig } from './config/load.js';
import { Doorman } from './doorman.js';
import { createLogger, type LogLevel } from './log.js';
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

const program = new Command()
  .name('doorman')
  .description('Doorman data plane: a PostgreSQL connection pooler (session and transaction pooling)')
  .version(VERSION)
  .argument('[config]', 'YAML config file', 'doorman.yaml')
  .addOption(new Option('-l, --log-level <level>', 'log level (overrides general.log_level)').choices(LEVELS))
  .addOption(new Option('-F, --log-format <format>', 'log format (default: pretty on a terminal, JSON otherwise)').choices(['json', 'pretty']))
  .showHelpAfterError()
  .action(async (configPath: string, opts: { logLevel?: LogLevel; logFormat?: 'json' | 'pretty' }) => {
    const { loaded, warnings } = loadOrExit(configPath);
    const g = loaded.config.general;
    const log = createLogger(opts.logLevel ?? g.logLevel, opts.logFormat ?? g.logFormat);
    for (const w of warnings) log.warn(w);
    const doorman = new Doorman(loaded, log);
    try {
      await doorman.listen();
    } catch (err) {
      log.fatal({ err: (err as Error).message }, 'cannot listen');
      process.exit(1);
    }
    const stop = (graceful: boolean): void => {
      void doorman.shutdown(graceful).then(() => {
        log.info('bye');
        process.exit(0);
      });
    };
    process.on('SIGTERM', () => stop(true));
    process.on('SIGINT', () => stop(false));
    process.on('SIGHUP', () => {
      try {
        doorman.reload(loadConfig(configPath, (path, message) => log.warn(`${path}: ${message}`)));
      } catch (err) {
        log.error({ err: (err as Error).message }, 'reload failed; keeping the current configuration');
      }
    });
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

await program.parseAsync(process.argv);
