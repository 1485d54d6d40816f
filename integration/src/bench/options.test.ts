import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBenchOptions, USAGE } from './options.js';

test('defaults: every cell, 15 s, all targets', () => {
  assert.deepEqual(parseBenchOptions([]), {
    quick: false,
    durationSeconds: 15,
    warmupSeconds: 5,
    cells: undefined,
    targets: ['doorman', 'pgbouncer', 'direct'],
    manyClients: false,
    connections: 10_000,
    connectCycles: null,
    warmupCycles: 200_000,
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

test('--warmup: 5 s by default, 0 for none, refused by name when bad or outside the cells', () => {
  assert.equal(parseBenchOptions(['--quick']).warmupSeconds, 5);
  assert.equal(parseBenchOptions(['--warmup', '0']).warmupSeconds, 0);
  assert.equal(parseBenchOptions(['--warmup=12', '--cells', 'c10']).warmupSeconds, 12);
  assert.throws(() => parseBenchOptions(['--warmup', 'some']), /^Error: --warmup must be a non-negative integer, got "some"$/);
  assert.throws(() => parseBenchOptions(['--warmup=-3']), /--warmup must be a non-negative integer, got "-3"/);
  assert.throws(() => parseBenchOptions(['--many-clients', '--warmup', '3']), /--warmup only applies to the pgbench cells/);
  assert.throws(() => parseBenchOptions(['--connect-cycles', '--warmup', '3']), /--warmup only applies to the pgbench cells/);
  assert.match(USAGE, /\n {2}--warmup N {11}seconds of pgbench at 10 clients .*\n(.*\n)*.*\(default 5; 0 = none\)/);
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

test('--warmup-cycles: 200000 by default, any non-negative count, 0 for none', () => {
  assert.equal(parseBenchOptions(['--connect-cycles']).warmupCycles, 200_000);
  assert.equal(parseBenchOptions(['--connect-cycles', '--warmup-cycles', '5000']).warmupCycles, 5000);
  assert.equal(parseBenchOptions(['--connect-cycles', '--warmup-cycles', '5000']).connectCycles, 100_000);
  assert.equal(parseBenchOptions(['--warmup-cycles=0', '--connect-cycles', '300']).warmupCycles, 0);
  assert.equal(parseBenchOptions(['--warmup-cycles=0', '--connect-cycles', '300']).connectCycles, 300);
});

test('--warmup-cycles refuses bad values by name and needs --connect-cycles', () => {
  assert.throws(() => parseBenchOptions(['--connect-cycles', '--warmup-cycles', 'lots']), /^Error: --warmup-cycles must be a non-negative integer, got "lots"$/);
  assert.throws(() => parseBenchOptions(['--connect-cycles', '--warmup-cycles=-1']), /--warmup-cycles must be a non-negative integer, got "-1"/);
  assert.throws(() => parseBenchOptions(['--connect-cycles', '--warmup-cycles', '2.5']), /--warmup-cycles must be a non-negative integer, got "2.5"/);
  assert.throws(() => parseBenchOptions(['--connect-cycles', '--warmup-cycles=']), /--warmup-cycles must be a non-negative integer, got ""/);
  assert.throws(() => parseBenchOptions(['--warmup-cycles', '10']), /--warmup-cycles only applies to --connect-cycles/);
});

test('the usage text lists --warmup-cycles with its default', () => {
  assert.match(USAGE, /\n {2}--warmup-cycles N {4}with --connect-cycles: .*\n.*\(default 200000; 0 = none\)/);
});
