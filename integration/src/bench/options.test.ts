import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBenchOptions } from './options.js';

test('defaults: every cell, 15 s, all targets', () => {
  assert.deepEqual(parseBenchOptions([]), {
    quick: false,
    durationSeconds: 15,
    cells: undefined,
    targets: ['doorman', 'pgbouncer', 'direct'],
    manyClients: false,
    connections: 10_000,
    connectCycles: null,
    cyclesPeer: false,
    workers: null,
    ioFloor: false,
    help: false,
  });
});

test('--io-floor runs 10 s per run by default and is a run of its own', () => {
  assert.equal(parseBenchOptions(['--io-floor']).ioFloor, true);
  assert.equal(parseBenchOptions(['--io-floor']).durationSeconds, 10);
  assert.equal(parseBenchOptions(['--io-floor', '--duration', '4']).durationSeconds, 4);
  assert.throws(() => parseBenchOptions(['--io-floor', '--many-clients']), /--io-floor is a separate run/);
  assert.throws(() => parseBenchOptions(['--io-floor', '--connect-cycles', '10']), /--io-floor is a separate run/);
});

test('--quick defaults to 5 s and --many-clients to 20 s; --duration wins over both', () => {
  assert.equal(parseBenchOptions(['--quick']).durationSeconds, 5);
  assert.equal(parseBenchOptions(['--many-clients']).durationSeconds, 20);
  assert.equal(parseBenchOptions(['--quick', '--duration', '8']).durationSeconds, 8);
  assert.equal(parseBenchOptions(['--duration=30']).durationSeconds, 30);
});

test('--cells, --targets (kept in canonical order) and --connections', () => {
  const options = parseBenchOptions(['--cells', 'tls', '--targets', 'direct,doorman', '--many-clients', '--connections', '500']);
  assert.equal(options.cells, 'tls');
  assert.deepEqual(options.targets, ['doorman', 'direct']);
  assert.equal(options.connections, 500);
  assert.equal(options.manyClients, true);
  assert.equal(parseBenchOptions(['--workers', '1']).workers, 1);
  assert.throws(() => parseBenchOptions(['--workers', '0']), /--workers must be a positive integer, got "0"/);
});

test('bad values are refused with a message', () => {
  assert.throws(() => parseBenchOptions(['--duration', '0']), /--duration must be a positive integer, got "0"/);
  assert.throws(() => parseBenchOptions(['--duration', '2.5']), /--duration must be a positive integer/);
  assert.throws(() => parseBenchOptions(['--targets', 'odyssey']), /unknown target "odyssey"/);
  assert.throws(() => parseBenchOptions(['--targets', ',']), /empty list/);
  assert.throws(() => parseBenchOptions(['--bogus']), /Unknown option '--bogus'/);
  assert.throws(() => parseBenchOptions(['extra']), /positional/);
});

test('--connect-cycles takes an optional count; --cycles-peer needs it', () => {
  assert.equal(parseBenchOptions(['--connect-cycles']).connectCycles, 100_000);
  assert.equal(parseBenchOptions(['--connect-cycles', '--cycles-peer']).connectCycles, 100_000);
  assert.equal(parseBenchOptions(['--connect-cycles', '--cycles-peer']).cyclesPeer, true);
  assert.equal(parseBenchOptions(['--connect-cycles', '2500']).connectCycles, 2500);
  assert.equal(parseBenchOptions(['--connect-cycles=300']).connectCycles, 300);
  assert.throws(() => parseBenchOptions(['--connect-cycles', 'many']), /--connect-cycles must be a positive integer, got "many"/);
  assert.throws(() => parseBenchOptions(['--cycles-peer']), /--cycles-peer only applies to --connect-cycles/);
  assert.throws(() => parseBenchOptions(['--connect-cycles', '--many-clients']), /separate runs/);
});
