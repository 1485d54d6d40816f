#!/usr/bin/env node
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT } from '../harness/index.js';
import { renderChart } from './chart.js';
import { cyclesProblems, renderCyclesReport } from './connect-cycles-report.js';
import { runIoFloor } from './io-floor.js';
import { renderIoFloorReport } from './io-floor-report.js';
import { runConnectCycles } from './connect-cycles.js';
import { renderManyClientsReport } from './many-clients-report.js';
import { runManyClients } from './many-clients.js';
import { selectedCells } from './cells.js';
import { parseBenchOptions, USAGE, type BenchOptions } from './options.js';
import { collectNotes, renderNotes, renderReport, renderSummaryTable } from './report.js';
import { runSuite } from './suite.js';

/**
 * `npm run bench -- [options]`: Doorman against PgBouncer and PostgreSQL with
 * pgbench (or --many-clients, --connect-cycles, or --io-floor), results in results/<timestamp>/. Every server
 * is stopped at the end; on Ctrl-C the harness's exit hook kills them.
 */

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

function commandLine(argv: readonly string[]): string {
  const args = argv.map(shellQuote).join(' ');
  if (process.env.npm_lifecycle_event === 'bench') return `npm run bench${args ? ` -- ${args}` : ''}`;
  const script = path.relative(process.cwd(), process.argv[1] ?? 'integration/dist/bench/bench.js');
  // Node's own flags (--no-memory-reducer) change what --many-clients measures: part of the command.
  const node = ['node', ...process.execArgv.map(shellQuote), script].join(' ');
  return `${node}${args ? ` ${args}` : ''}`;
}

/** 2025-11-24T19-40-05Z: sortable and safe as a directory name. */
function timestamp(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function runCells(options: BenchOptions, command: string, outDir: string): Promise<void> {
  const rawPath = path.join(outDir, 'raw.json');
  const results = await runSuite(options, command, {
    log,
    checkpoint: (partial) => writeFile(rawPath, JSON.stringify(partial, null, 2) + '\n'),
  });
  await writeFile(rawPath, JSON.stringify(results, null, 2) + '\n');
  await writeFile(path.join(outDir, 'report.md'), renderReport(results));
  await writeFile(path.join(outDir, 'chart.svg'), renderChart(results.cells));
  const notes = collectNotes(results.cells);
  process.stdout.write(`\n${renderSummaryTable(results.cells, notes)}\n\n${renderNotes(notes)}\n\n`);
  log(`results: ${path.relative(process.cwd(), outDir) || '.'}/{report.md,chart.svg,raw.json}`);
}

/** raw.json and report.md into `outDir`, the report also on stdout. */
async function writeResults(outDir: string, raw: unknown, report: string): Promise<void> {
  await writeFile(path.join(outDir, 'raw.json'), JSON.stringify(raw, null, 2) + '\n');
  await writeFile(path.join(outDir, 'report.md'), report);
  process.stdout.write(`\n${report}\n`);
  log(`results: ${path.relative(process.cwd(), outDir) || '.'}/{report.md,raw.json}`);
}

async function runMany(options: BenchOptions, command: string, outDir: string): Promise<void> {
  const results = await runManyClients(options, command, log);
  await writeResults(outDir, results, renderManyClientsReport(results));
}

async function runFloor(options: BenchOptions, command: string, outDir: string): Promise<void> {
  const results = await runIoFloor(options, command, log);
  await writeResults(outDir, results, renderIoFloorReport(results));
}

/** Exit status 1 when any cycle failed, the run was aborted, or RSS did not stay flat. */
async function runCycles(options: BenchOptions, command: string, outDir: string): Promise<number> {
  const results = await runConnectCycles(options, command, log);
  await writeResults(outDir, { connectCycles: results }, renderCyclesReport(results));
  const problems = cyclesProblems(results);
  for (const problem of problems) log(`PROBLEM: ${problem}`);
  return problems.length > 0 ? 1 : 0;
}

async function main(argv: readonly string[]): Promise<number> {
  let options: BenchOptions;
  try {
    options = parseBenchOptions(argv);
    // A --cells that matches nothing is a usage error, found before any server starts or folder is made.
    if (options.connectCycles === null && !options.ioFloor && !options.manyClients) selectedCells(options.quick, options.cells);
  } catch (err) {
    log(`${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const command = commandLine(argv);
  const outDir = path.join(REPO_ROOT, 'results', timestamp(new Date()));
  await mkdir(outDir, { recursive: true });
  log(`${command}\nwriting to ${outDir}`);
  if (options.connectCycles !== null) return runCycles(options, command, outDir);
  if (options.ioFloor) await runFloor(options, command, outDir);
  else if (options.manyClients) await runMany(options, command, outDir);
  else await runCells(options, command, outDir);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    log(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  },
);
