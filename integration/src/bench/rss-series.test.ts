import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkpoints, fitLine, growthOverLastHalf, growthVerdict, sortSamples, summarizeSeries, type Growth, type ProcessSample } from './rss-series.js';

const MiB = 1024 * 1024;

function at(cycles: number, rssMiB: number | null, label: ProcessSample['label'] = 'cycles', openFds: number | null = 40): ProcessSample {
  return { label, cycles, rssBytes: rssMiB === null ? null : rssMiB * MiB, openFds };
}

/** before, ten tenths of 1000 cycles with the given RSS, after. */
function series(tenths: readonly (number | null)[], before = 100, after = 150): ProcessSample[] {
  return [at(0, before, 'before', 29), ...tenths.map((mib, i) => at((i + 1) * 100, mib)), at(1000, after, 'after', 38)];
}

test('checkpoints are every twentieth, rounded up, ending at the total, without repeats', () => {
  assert.deepEqual(checkpoints(100_000).slice(0, 3), [5_000, 10_000, 15_000]);
  assert.equal(checkpoints(100_000).length, 20);
  assert.equal(checkpoints(100_000)[19], 100_000);
  assert.deepEqual(checkpoints(25, 10), [3, 5, 8, 10, 13, 15, 18, 20, 23, 25]);
  assert.deepEqual(checkpoints(3), [1, 2, 3]);
  assert.deepEqual(checkpoints(1), [1]);
});

test('fitLine is the least-squares line; null without two distinct x', () => {
  assert.deepEqual(fitLine([{ x: 0, y: 1 }, { x: 1, y: 3 }, { x: 2, y: 5 }]), { slope: 2, intercept: 1 });
  const zigzag = fitLine([{ x: 0, y: 0 }, { x: 1, y: 2 }, { x: 2, y: 0 }, { x: 3, y: 2 }]);
  assert.equal(zigzag?.slope.toFixed(9), '0.400000000');
  assert.equal(zigzag?.intercept.toFixed(9), '0.400000000');
  assert.equal(fitLine([{ x: 5, y: 1 }]), null);
  assert.equal(fitLine([{ x: 5, y: 1 }, { x: 5, y: 9 }]), null);
});

test('summarizeSeries: min, max, the before sample and the after sample', () => {
  assert.deepEqual(summarizeSeries(series([120, 130, 125, 140, 135, 130, 128, 131, 129, 130])), {
    samples: 12,
    minBytes: 100 * MiB,
    maxBytes: 150 * MiB,
    firstBytes: 100 * MiB,
    warmedBytes: null,
    lastBytes: 150 * MiB,
  });
});

test('summarizeSeries falls back to the last sample taken when the after sample is missing', () => {
  const samples = series([120, 130, null, null, null, null, null, null, null, null], 100, 0);
  samples[samples.length - 1] = at(1000, null, 'after');
  const summary = summarizeSeries(samples);
  assert.equal(summary.lastBytes, 130 * MiB);
  assert.equal(summary.maxBytes, 130 * MiB);
  assert.equal(summarizeSeries([]).minBytes, null);
});

test('growth over the last half fits the samples from half the cycles to the end', () => {
  // 500..1000 cycles rise by exactly 2 MiB per 100 cycles; the first half (warm-up) is ignored.
  const growth = growthOverLastHalf(series([10, 90, 120, 140, 200, 202, 204, 206, 208, 210]), 1000) as Growth;
  assert.equal(growth.fromCycles, 500);
  assert.equal(growth.toCycles, 1000);
  assert.equal(growth.fromBytes, 200 * MiB);
  assert.equal(growth.toBytes, 210 * MiB);
  assert.equal(growth.endpointGrowthBytes, 10 * MiB);
  assert.equal(Math.round(growth.growthBytes), 10 * MiB);
  assert.equal(growth.growthPercent.toFixed(3), '5.000');
  assert.equal(growth.points, 6);
});

test('a garbage-collector sawtooth does not read as growth', () => {
  // The endpoints alone say +20 MiB (+10.5 %): the half starts in a trough and ends above it.
  const growth = growthOverLastHalf(series([150, 200, 190, 200, 190, 225, 200, 226, 195, 210]), 1000) as Growth;
  assert.equal(growth.endpointGrowthBytes, 20 * MiB);
  assert.equal((growth.growthBytes / MiB).toFixed(2), '5.14');
  assert.equal(growthVerdict(growth), 'flat');
});

test('no growth figure unless the run reached its last cycle with two samples in the second half', () => {
  assert.equal(growthOverLastHalf(series([120, 130, 125, 140, 135, 130, 128, 131, 129, null]), 1000), null);
  assert.equal(growthOverLastHalf([at(0, 100, 'before'), at(1000, 120)], 1000), null);
  assert.equal(growthOverLastHalf([at(0, 100, 'before'), at(1000, 120, 'after')], 1000), null);
});

/** before at 60 MiB, warmed at 210 MiB after the warm-up, then the measured tenths of 1000 cycles and after. */
function warmedSeries(tenths: readonly number[]): ProcessSample[] {
  return [at(0, 60, 'before', 29), at(0, 210, 'warmed', 41), ...tenths.map((mib, i) => at((i + 1) * 100, mib)), at(1000, 200, 'after', 38)];
}

test('summarizeSeries reports the warmed sample apart from the before and after ones', () => {
  assert.deepEqual(summarizeSeries(warmedSeries([200, 201, 202, 203, 204, 205, 206, 207, 208, 209])), {
    samples: 13,
    minBytes: 60 * MiB,
    maxBytes: 210 * MiB,
    firstBytes: 60 * MiB,
    warmedBytes: 210 * MiB,
    lastBytes: 200 * MiB,
  });
});

test('sortSamples: by measured cycles; at a tie before, warmed, the checkpoint, after', () => {
  const sorted = sortSamples([at(1000, 3, 'after'), at(500, 4), at(1000, 5), at(0, 2, 'warmed'), at(0, 1, 'before')]);
  assert.deepEqual(
    sorted.map((s) => `${s.label}@${s.cycles}`),
    ['before@0', 'warmed@0', 'cycles@500', 'cycles@1000', 'after@1000'],
  );
});

test('a steep rise during warm-up does not count: flat measured cycles are flat', () => {
  // 60 -> 210 MiB during warm-up (+250 %), then the measured half swings between 195 and 199 MiB.
  const growth = growthOverLastHalf(warmedSeries([205, 200, 198, 199, 196, 199, 195, 198, 196, 197]), 1000) as Growth;
  assert.equal(growth.fromCycles, 500);
  assert.equal(growth.toCycles, 1000);
  assert.equal(growth.fromBytes, 196 * MiB);
  assert.equal(growth.toBytes, 197 * MiB);
  assert.equal(growth.points, 6);
  assert.equal((growth.growthBytes / MiB).toFixed(2), '-0.14');
  assert.equal(growthVerdict(growth), 'flat');
});

test('RSS still rising in the measured half after warm-up is growing', () => {
  // +6 MiB per 100 measured cycles from 500 on: +30 MiB, +14.3 % of the fitted 210 MiB at 500 cycles.
  const growth = growthOverLastHalf(warmedSeries([200, 201, 203, 206, 210, 216, 222, 228, 234, 240]), 1000) as Growth;
  assert.equal(growth.fromCycles, 500);
  assert.equal(growth.points, 6);
  assert.equal(Math.round(growth.growthBytes), 30 * MiB);
  assert.equal(growth.growthPercent.toFixed(2), '14.29');
  assert.equal(growthVerdict(growth), 'growing');
});

test('a run cut short after its warm-up has no growth figure', () => {
  const samples = [at(0, 60, 'before'), at(0, 210, 'warmed'), at(0, 200, 'after')];
  assert.equal(growthOverLastHalf(samples, 1000), null);
  assert.equal(growthVerdict(growthOverLastHalf(samples, 1000)), 'unknown');
});

function growthOf(growthBytes: number, growthPercent: number): Growth {
  return { fromCycles: 50, toCycles: 100, fromBytes: 0, toBytes: 0, endpointGrowthBytes: 0, growthBytes, growthPercent, points: 6 };
}

test('flat means under 5 % or under 10 MiB; growing needs both bounds crossed', () => {
  assert.equal(growthVerdict(growthOf(9.9 * MiB, 50)), 'flat');
  assert.equal(growthVerdict(growthOf(500 * MiB, 4.9)), 'flat');
  assert.equal(growthVerdict(growthOf(-30 * MiB, -20)), 'flat');
  assert.equal(growthVerdict(growthOf(10 * MiB, 5)), 'growing');
  assert.equal(growthVerdict(growthOf(40 * MiB, 20)), 'growing');
  assert.equal(growthVerdict(null), 'unknown');
});
