/**
 * doormanctl's commands (commander). Everything the program touches outside itself (the Admin API, the
 * output streams, files, the environment, the clock) comes in through CliDeps, so the commands are tested
 * in-process against a fake API.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { stringify } from 'yaml';
import type { ApplyResponse } from '@doorman/proto/api';
import { VERSION } from '../version.js';
import type { AdminApi, ConnectOptions } from './admin-api.js';
import { certsInit } from './certs.js';
import { connectOptions, type Env, type GlobalFlags } from './connect-options.js';
import { CliError, EXIT, type ExitCode } from './exit-codes.js';
import { formatDiff, formatHistory, formatNodes, formatStats, formatStatus, objectsTable } from './render.js';

export interface CliDeps {
  connect(opts: ConnectOptions): AdminApi;
  stdout(text: string): void;
  stderr(text: string): void;
  env: Env;
  now(): number;
}

type OutputFormat = 'table' | 'json' | 'yaml';
const GET_KINDS = ['pools', 'users', 'nodes', 'config'] as const;

function uint(name: string, min = 0): (v: string) => number {
  return (v: string) => {
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v)) || Number(v) < min) throw new InvalidArgumentError(`${name} must be a whole number >= ${min}`);
    return Number(v);
  };
}

function readDocument(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new CliError(EXIT.INVALID, `${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function author(): string {
  let user = 'unknown';
  try {
    user = os.userInfo().username;
  } catch {
    // No passwd entry (some containers): keep "unknown".
  }
  return `${user}@${os.hostname()}`;
}

function outputOption(): Option {
  return new Option('-o, --output <format>', 'output format').choices(['table', 'json', 'yaml']).default('table');
}

/** "k=v,k2=v2" label filters. */
function parseLabels(text: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const part of (text ?? '').split(',').filter((p) => p.trim() !== '')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new CliError(EXIT.INVALID, `--labels: "${part}" is not key=value`);
    labels[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return labels;
}

function structured(value: unknown, format: 'json' | 'yaml'): string {
  return format === 'json' ? JSON.stringify(value, null, 2) + '\n' : stringify(value);
}

/** Runs doormanctl with `argv` (without node and the script); resolves with the exit code. */
export async function runCli(argv: readonly string[], deps: CliDeps): Promise<number> {
  let exitCode: ExitCode = EXIT.OK;
  // Connected on first use: `certs init` and usage errors need no control plane.
  const conn: { api: AdminApi | null } = { api: null };
  const program = new Command();
  const admin = (): AdminApi => {
    conn.api ??= deps.connect(connectOptions(program.opts<GlobalFlags>(), deps.env));
    return conn.api;
  };
  const print = deps.stdout;

  const printApplied = (r: ApplyResponse, verb: string): void => {
    for (const w of r.warnings) deps.stderr(`warning: ${w}\n`);
    print(formatDiff(r.diff));
    if (r.dryRun) print(`dry run: ${r.diff.length} change(s) not applied; current generation ${r.generation}\n`);
    else if (!r.changed) print(`no changes; generation ${r.generation} stays current\n`);
    else print(`${verb} generation ${r.generation} (${r.diff.length} change(s))\n`);
  };

  program
    .name('doormanctl')
    .description('Manage a Doorman fleet through its control plane')
    .version(VERSION)
    .option('-s, --server <host:port,...>', 'control-plane replicas, tried in order (env DOORMAN_CONTROL_PLANE)')
    .option('--ca <file>', 'CA certificate that signed the control plane\'s certificate (env DOORMAN_CA)')
    .option('--cert <file>', 'client certificate (env DOORMAN_CERT)')
    .option('--key <file>', 'client certificate key (env DOORMAN_KEY)')
    .option('--token-file <file>', 'file holding the admin bearer token (env DOORMAN_TOKEN holds the token itself)')
    .option('--insecure', 'plaintext gRPC, for local development only')
    .option('--timeout <duration>', 'per-call deadline, e.g. 10s', '10s')
    .exitOverride()
    .configureOutput({ writeOut: (s) => deps.stdout(s), writeErr: (s) => deps.stderr(s) })
    .showHelpAfterError('(run doormanctl help for the commands and options)');

  program
    .command('apply')
    .description('validate and apply a pools.yaml as the next generation; prints the diff')
    .requiredOption('-f, --file <file>', 'the document (the data plane\'s YAML schema); - for stdin')
    .option('--dry-run', 'validate and show the diff without applying')
    .option('--expected-generation <n>', 'fail unless the current generation is exactly this one', uint('--expected-generation', 1))
    .action(async (o: { file: string; dryRun?: boolean; expectedGeneration?: number }) => {
      const documentYaml = readDocument(o.file);
      const r = await admin().apply({ documentYaml, dryRun: o.dryRun === true, expectedGeneration: o.expectedGeneration ?? 0, author: author() });
      printApplied(r, 'applied');
    });

  program
    .command('diff')
    .description('show what applying a pools.yaml would change (exit 0: nothing, 1: changes, >1: error)')
    .requiredOption('-f, --file <file>', 'the document; - for stdin')
    .action(async (o: { file: string }) => {
      const r = await admin().diff({ documentYaml: readDocument(o.file) });
      if (r.diff.length === 0) {
        print(`no changes against generation ${r.generation}\n`);
        return;
      }
      print(formatDiff(r.diff));
      print(`${r.diff.length} change(s) against generation ${r.generation}\n`);
      exitCode = EXIT.CHANGES;
    });

  program
    .command('get')
    .description('show the current (or an older) config, its pools or users, or the registered nodes')
    .addArgument(program.createArgument('<kind>', 'what to show').choices(GET_KINDS))
    .addOption(outputOption())
    .option('--generation <n>', 'an older generation (default: current)', uint('--generation', 1))
    .option('--labels <k=v,...>', 'get nodes: only nodes with all these labels')
    .action(async (kind: string, o: { output: OutputFormat; generation?: number; labels?: string }) => {
      if (kind === 'nodes') {
        const nodes = await admin().nodes({ labels: parseLabels(o.labels) });
        return print(o.output === 'table' ? formatNodes(nodes, deps.now()) : structured(nodes.nodes, o.output));
      }
      const r = await admin().get({ kind, generation: o.generation ?? 0 });
      let value: unknown;
      try {
        value = JSON.parse(r.json);
      } catch {
        throw new CliError(EXIT.SERVER, `get ${kind}: the control plane answered with invalid JSON`);
      }
      if (o.output !== 'table') return print(structured(value, o.output));
      const table = objectsTable(value);
      // A whole config is a tree, not rows: YAML reads best.
      print(table ?? stringify(value));
      print(`(generation ${r.generation})\n`);
    });

  program
    .command('history')
    .description('list past generations: who applied what, when')
    .option('--limit <n>', 'most recent entries to show', uint('--limit', 1), 20)
    .addOption(outputOption())
    .action(async (o: { limit: number; output: OutputFormat }) => {
      const r = await admin().history({ limit: o.limit });
      print(o.output === 'table' ? formatHistory(r.entries) : structured(r.entries, o.output));
    });

  program
    .command('rollback')
    .description('re-apply an older generation\'s config as a new generation')
    .requiredOption('--to <generation>', 'the generation to go back to', uint('--to', 1))
    .action(async (o: { to: number }) => {
      const r = await admin().rollback({ toGeneration: o.to, author: author() });
      printApplied(r, `rolled back to ${o.to} as`);
    });

  program
    .command('delete')
    .description('remove a pool (database), or one user of it')
    .argument('<database>', 'pool (database) name')
    .option('--user <name>', 'remove only this user')
    .option('--expected-generation <n>', 'fail unless the current generation is exactly this one', uint('--expected-generation', 1))
    .action(async (database: string, o: { user?: string; expectedGeneration?: number }) => {
      const r = await admin().delete({ database, username: o.user ?? '', author: author(), expectedGeneration: o.expectedGeneration ?? 0 });
      printApplied(r, 'deleted; now');
    });

  program
    .command('status')
    .description('per data plane: acked generation, last NACK, last seen, version, attached replica')
    .addOption(outputOption())
    .action(async (o: { output: OutputFormat }) => {
      const r = await admin().status({});
      print(o.output === 'table' ? formatStatus(r, deps.now()) : structured(r, o.output));
    });

  program
    .command('stats')
    .description('fleet pool figures, summed per database and user')
    .option('--per-node', 'also list every node\'s figures')
    .option('--labels <k=v,...>', 'only nodes with all these labels')
    .addOption(outputOption())
    .action(async (o: { perNode?: boolean; labels?: string; output: OutputFormat }) => {
      const r = await admin().stats({ labels: parseLabels(o.labels) });
      print(o.output === 'table' ? formatStats(r, o.perNode === true) : structured(r, o.output));
    });

  const certs = program.command('certs').description('development TLS material');
  certs
    .command('init')
    .description('write a dev CA, a control-plane server certificate and client certificates (openssl)')
    .requiredOption('--dir <dir>', 'where to write them')
    .option('--days <n>', 'validity', uint('--days', 1), 825)
    .option('--san <entry>', 'extra server subjectAltName (DNS:name or IP:addr), repeatable', (v: string, prev: string[]) => [...prev, v], [])
    .option('--force', 'replace existing files')
    .action((o: { dir: string; days: number; san: string[]; force?: boolean }) => {
      const files = certsInit({ dir: o.dir, days: o.days, serverNames: o.san, force: o.force === true });
      print(renderFiles(files));
    });

  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    exitCode = failure(err, deps);
  } finally {
    conn.api?.close();
  }
  return exitCode;
}

function renderFiles(files: { role: string; cert: string; key: string }[]): string {
  return files.map((f) => `${f.role.padEnd(10)} ${f.cert}\n${''.padEnd(10)} ${f.key} (0600)\n`).join('');
}

function failure(err: unknown, deps: CliDeps): ExitCode {
  if (err instanceof CommanderError) {
    // Help and --version end with exit 0; every usage error is "invalid" (1 means "changes" for diff).
    return err.exitCode === 0 ? EXIT.OK : EXIT.INVALID;
  }
  if (err instanceof CliError) {
    // Continuation lines (a validation error's `path: message` list) are printed as they came.
    deps.stderr(`doormanctl: ${err.message}\n`);
    return err.exit;
  }
  deps.stderr(`doormanctl: ${err instanceof Error ? err.message : String(err)}\n`);
  return EXIT.SERVER;
}
