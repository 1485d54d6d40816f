import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  directCapacity,
  filterCells,
  fullCells,
  isExpectedFailure,
  makeCell,
  pgbenchArgs,
  pgbenchOpenFiles,
  pgbenchSeconds,
  quickCells,
  SELECT_ONLY_SCRIPT,
  selectedCells,
  WARMUP_CLIENTS,
  warmupCells,
} from './cells.js';

test('the full suite has every cell the brief lists, in run order', () => {
  assert.deepEqual(
    fullCells().map((c) => c.id),
    [
      'select-only/simple/c10',
      'select-only/simple/c100',
      'select-only/simple/c500',
      'select-only/simple/c2000',
      'select-only/extended/c10',
      'select-only/extended/c100',
      'select-only/extended/c500',
      'select-only/extended/c2000',
      'select-only/prepared/c10',
      'select-only/prepared/c100',
      'select-only/prepared/c500',
      'select-only/prepared/c2000',
      'tpcb-like/simple/c100',
      'select-only/simple/c100/connect',
      'select-only/simple/c100/tls',
      'select-only/simple/c100/server-tls',
    ],
  );
});

test('quick cells are select-only simple and extended at 10 and 100 clients', () => {
  assert.deepEqual(
    quickCells().map((c) => c.id),
    ['select-only/simple/c10', 'select-only/simple/c100', 'select-only/extended/c10', 'select-only/extended/c100'],
  );
});

test('filterCells matches substrings, and a trailing $ anchors at the end', () => {
  const cells = fullCells();
  assert.deepEqual(filterCells(cells, 'tls,connect').map((c) => c.id), [
    'select-only/simple/c100/connect',
    'select-only/simple/c100/tls',
    'select-only/simple/c100/server-tls',
  ]);
  assert.deepEqual(filterCells(cells, '/tls$').map((c) => c.id), ['select-only/simple/c100/tls']);
  assert.deepEqual(filterCells(cells, 'simple/c100$').map((c) => c.id), ['select-only/simple/c100', 'tpcb-like/simple/c100']);
  assert.equal(filterCells(cells, undefined).length, 16);
  assert.equal(filterCells(cells, ' , ').length, 16);
  assert.deepEqual(filterCells(cells, 'nothing'), []);
});

test('pgbenchArgs builds the select-only command with the script file', () => {
  const cell = makeCell('select-only', 'extended', 100);
  assert.deepEqual(pgbenchArgs(cell, { durationSeconds: 15, scriptPath: '/t/s.sql', logPrefix: '/t/log/tx' }), [
    '-n', '-j', '2', '-c', '100', '-T', '15', '-M', 'extended', '--log', '--log-prefix=/t/log/tx', '-f', '/t/s.sql',
  ]);
});

test('pgbenchArgs uses the builtin tpcb-like script and --connect, and lengthens -T for many clients', () => {
  assert.deepEqual(pgbenchArgs(makeCell('tpcb-like', 'simple', 100), { durationSeconds: 5, scriptPath: '/s', logPrefix: '/l' }), [
    '-n', '-j', '2', '-c', '100', '-T', '5', '-M', 'simple', '--log', '--log-prefix=/l', '-b', 'tpcb-like',
  ]);
  assert.deepEqual(
    pgbenchArgs(makeCell('select-only', 'simple', 2000, { connect: true }), { durationSeconds: 5, scriptPath: '/s', logPrefix: '/l' }),
    ['-n', '-j', '2', '-c', '2000', '-T', '5', '-M', 'simple', '--log', '--log-prefix=/l', '--connect', '-f', '/s'],
  );
  assert.equal(pgbenchSeconds(15, makeCell('select-only', 'simple', 2000)), 25);
  assert.equal(pgbenchSeconds(15, makeCell('select-only', 'simple', 500)), 17);
  assert.equal(pgbenchSeconds(15, makeCell('select-only', 'simple', 100)), 15);
});

test('selectedCells narrows --quick or the full suite, and names --cells when nothing is left', () => {
  assert.deepEqual(selectedCells(true, 'c100$').map((c) => c.id), ['select-only/simple/c100', 'select-only/extended/c100']);
  assert.equal(selectedCells(false, undefined).length, fullCells().length);
  assert.throws(() => selectedCells(false, 'c3000'), /^Error: --cells "c3000" matches no cell$/);
});

test('a warm-up run has no transaction log', () => {
  assert.deepEqual(pgbenchArgs(makeCell('select-only', 'prepared', 10), { durationSeconds: 5, scriptPath: '/s', logPrefix: null }), [
    '-n', '-j', '2', '-c', '10', '-T', '5', '-M', 'prepared', '-f', '/s',
  ]);
});

test('the first cell of each kind gets a warm-up of the same kind at 10 clients, and no other cell does', () => {
  const cells = fullCells();
  const warmups = warmupCells(cells);
  assert.deepEqual(
    [...warmups].map(([cell, warmup]) => `${cell.id} <- ${warmup.id}`),
    [
      'select-only/simple/c10 <- select-only/simple/c10',
      'select-only/extended/c10 <- select-only/extended/c10',
      'select-only/prepared/c10 <- select-only/prepared/c10',
      'tpcb-like/simple/c100 <- tpcb-like/simple/c10',
      'select-only/simple/c100/connect <- select-only/simple/c10/connect',
      'select-only/simple/c100/tls <- select-only/simple/c10/tls',
      'select-only/simple/c100/server-tls <- select-only/simple/c10/server-tls',
    ],
  );
  assert.equal(WARMUP_CLIENTS, 10);
  // A filtered run warms its own first cell of a kind.
  const only = filterCells(cells, 'extended/c2000,extended/c500');
  assert.deepEqual([...warmupCells(only)].map(([cell, warmup]) => `${cell.id} <- ${warmup.id}`), ['select-only/extended/c500 <- select-only/extended/c10']);
});

test('cell ids name the TLS and --connect variants', () => {
  assert.equal(makeCell('select-only', 'simple', 100, { tls: true }).id, 'select-only/simple/c100/tls');
  assert.equal(makeCell('select-only', 'simple', 100, { connect: true, tls: true }).id, 'select-only/simple/c100/connect/tls');
});

test('only prepared through PgBouncer is an expected failure', () => {
  const prepared = makeCell('select-only', 'prepared', 10);
  assert.equal(isExpectedFailure(prepared, 'doorman'), false);
  assert.equal(isExpectedFailure(prepared, 'pgbouncer'), true);
  assert.equal(isExpectedFailure(prepared, 'direct'), false);
  assert.equal(isExpectedFailure(makeCell('select-only', 'extended', 10), 'doorman'), false);
});

test('capacity and open-files arithmetic', () => {
  assert.equal(directCapacity(300, 3, 40), 257);
  assert.equal(pgbenchOpenFiles(2000, 1024), 2256);
  assert.equal(pgbenchOpenFiles(10, 20000), 20000);
});

test('the select-only script is the two-line custom script', () => {
  assert.equal(SELECT_ONLY_SCRIPT, '\\set aid random(1,100000)\nSELECT :aid;\n');
});
