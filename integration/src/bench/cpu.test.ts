import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cpuMicrosPerTransaction,
  parseContextSwitches,
  parseStatTimes,
  parseVmRss,
  samplesWithin,
  switchesPerTransaction,
  sysMicrosPerTransaction,
  type CpuSample,
} from './cpu.js';

test('parseStatTimes reads utime and stime (fields 14 and 15)', () => {
  const stat = '4242 (pgbouncer) S 1 4242 4242 0 -1 4194560 1200 0 0 0 731 402 0 0 20 0 1 0 12345 20000000 2500 18446744073709551615';
  assert.deepEqual(parseStatTimes(stat), { utime: 731, stime: 402 });
});

test('parseStatTimes copes with spaces and parentheses in the command name', () => {
  const stat = '77 (node (worker) 1) R 1 77 77 0 -1 0 0 0 0 0 15 4 0 0 20 0 11 0 1 1 1';
  assert.deepEqual(parseStatTimes(stat), { utime: 15, stime: 4 });
});

test('parseStatTimes rejects text that is not a stat line', () => {
  assert.throws(() => parseStatTimes('no parentheses here'), /not a \/proc stat line/);
  assert.throws(() => parseStatTimes('1 (x) S 1 2'), /no utime\/stime/);
});

test('parseVmRss converts kB to bytes', () => {
  const status = 'Name:\tnode\nVmPeak:\t  900000 kB\nVmRSS:\t   65990 kB\nThreads:\t11\n';
  assert.equal(parseVmRss(status), 65990 * 1024);
  assert.equal(parseVmRss('Name:\tzombie\nState:\tZ (zombie)\n'), null);
});

test('parseContextSwitches adds voluntary and involuntary switches', () => {
  const status = [
    'Name:\tlibuv-worker',
    'State:\tS (sleeping)',
    'Tgid:\t4242',
    'Pid:\t4250',
    'Threads:\t11',
    'Cpus_allowed_list:\t0-7',
    'voluntary_ctxt_switches:\t183204',
    'nonvoluntary_ctxt_switches:\t1577',
    '',
  ].join('\n');
  assert.equal(parseContextSwitches(status), 184781);
});

test('parseContextSwitches is null when either count is missing', () => {
  assert.equal(parseContextSwitches('Name:\tnode\nvoluntary_ctxt_switches:\t12\n'), null);
  assert.equal(parseContextSwitches('Name:\tnode\nnonvoluntary_ctxt_switches:\t3\n'), null);
});

const samples: CpuSample[] = [
  { atUs: 1_000_000, ticks: 10, sysTicks: 4, switches: 1_000, rssBytes: 1 },
  { atUs: 1_200_000, ticks: 20, sysTicks: 8, switches: 3_000, rssBytes: 1 },
  { atUs: 1_400_000, ticks: 35, sysTicks: 15, switches: 6_000, rssBytes: 1 },
  { atUs: 1_600_000, ticks: 50, sysTicks: 19, switches: 51_000, rssBytes: 1 },
];

test('samplesWithin picks the widest pair of samples inside the window', () => {
  assert.deepEqual(samplesWithin(samples, 1_100_000, 1_500_000), { from: samples[1], to: samples[2] });
  assert.deepEqual(samplesWithin(samples, 1_000_000, 1_600_000), { from: samples[0], to: samples[3] });
});

test('samplesWithin is null when fewer than two samples fall inside', () => {
  assert.equal(samplesWithin(samples, 1_300_000, 1_500_000), null);
  assert.equal(samplesWithin([], 0, 10), null);
});

test('cpuMicrosPerTransaction converts ticks to microseconds per transaction', () => {
  const window = { from: samples[0] as CpuSample, to: samples[3] as CpuSample };
  // 40 ticks at 100 Hz = 400 ms = 400000 µs over 20000 transactions.
  assert.equal(cpuMicrosPerTransaction(window, 20_000, 100), 20);
  assert.equal(cpuMicrosPerTransaction(window, 0, 100), null);
});

test('sysMicrosPerTransaction converts kernel ticks to microseconds per transaction', () => {
  const window = { from: samples[0] as CpuSample, to: samples[3] as CpuSample };
  // 15 ticks of stime at 100 Hz = 150000 µs over 20000 transactions.
  assert.equal(sysMicrosPerTransaction(window, 20_000, 100), 7.5);
  assert.equal(sysMicrosPerTransaction(window, 0, 100), null);
});

test('switchesPerTransaction divides the switches between the samples by the transactions', () => {
  const window = { from: samples[1] as CpuSample, to: samples[3] as CpuSample };
  assert.equal(switchesPerTransaction(window, 20_000), 2.4);
  assert.equal(switchesPerTransaction(window, 0), null);
  assert.equal(switchesPerTransaction(window, -1), null);
});
