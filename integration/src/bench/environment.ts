import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DOORMAN_CLI, PG_BIN, PGBOUNCER_BIN, REPO_ROOT, run, type PgCluster } from '../harness/index.js';
import { readOpenFilesLimit } from './fd-limit.js';

/** Versions and machine facts recorded with every result. */

async function firstLine(command: string, args: readonly string[]): Promise<string> {
  const result = await run(command, args, { timeoutMs: 10_000 });
  const line = (result.stdout || result.stderr).split('\n')[0]?.trim();
  return line || `unknown (exit ${String(result.code)})`;
}

/** The build measured: this checkout's, or another one named by DOORMAN_CLI (e.g. a snapshot of a commit). */
async function doormanVersion(): Promise<string> {
  if (process.env.DOORMAN_CLI) return `DOORMAN_CLI=${DOORMAN_CLI}`;
  const pkg = JSON.parse(await readFile(path.join(REPO_ROOT, 'dataplane', 'package.json'), 'utf8')) as { version?: string };
  const commit = await run('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD'], { timeoutMs: 10_000 });
  const dirty = await run('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--', 'dataplane', 'proto'], { timeoutMs: 10_000 });
  const rev = commit.code === 0 ? commit.stdout.trim() : 'no git';
  const state = dirty.code === 0 && dirty.stdout.trim() !== '' ? ' + uncommitted changes' : '';
  return `${pkg.version ?? '?'} (git ${rev}${state})`;
}

/** The installed version of an npm package at the repository root. */
export async function packageVersion(name: string): Promise<string> {
  const text = await readFile(path.join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8').catch(() => null);
  if (text === null) return 'not installed';
  return (JSON.parse(text) as { version?: string }).version ?? '?';
}

function cpuModel(): string {
  const cpus = os.cpus();
  return `${cpus[0]?.model ?? 'unknown'} × ${cpus.length}`;
}

export function loadAverage(): string {
  return os.loadavg().map((v) => v.toFixed(2)).join(' ');
}

export async function ticksPerSecond(): Promise<number> {
  const result = await run('getconf', ['CLK_TCK'], { timeoutMs: 10_000 });
  const value = Number(result.stdout.trim());
  // USER_HZ is 100 on every mainstream Linux build.
  return Number.isInteger(value) && value > 0 ? value : 100;
}

export async function collectEnvironment(pg: PgCluster): Promise<Record<string, string>> {
  const limit = await readOpenFilesLimit();
  return {
    Doorman: await doormanVersion(),
    PgBouncer: await firstLine(PGBOUNCER_BIN, ['--version']),
    PostgreSQL: await pg.query('SHOW server_version'),
    pgbench: await firstLine(path.join(PG_BIN, 'pgbench'), ['--version']),
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    CPU: cpuModel(),
    'open files (bench process)': limit ? `${limit.soft} soft / ${limit.hard} hard` : 'unknown',
    'load average at start': loadAverage(),
  };
}
