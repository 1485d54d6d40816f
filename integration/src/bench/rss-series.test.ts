import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkpoints, fitLine, growthOverLastHalf, growthVerdict, summarizeSeries, type Growth, type ProcessSample } from './rss-series.js';

const MiB = 1024 * 1024;

function at(cycles: number, rssMiB: number | null, label: ProcessSample['label'] = 'cycles', openFds: number | null = 40): ProcessSample {
  return { label, cycles, rssBytes: rssMiB === null ? null : rssMiB * MiB, openFds };
}

/** before, ten tenths of 1000 cycles with the given RSS, after. */
function series(tenths: readonly (number | null)[], before = 100, after = 150): ProcessSample[] {
  return [at(0, before, 'before', 29), ...tenths.map((mib, i) => at((i + 1) * 100, mib)), at(1000, after, 'after', 38)];
}

test('checkpoints are every tenth, rounded up, ending at the total, without repeats', () => {
  assert.deepEqual(checkpoints(100_000), [10_000, 20_000, 30_000, 40_000, 50_000, 60_000, 70_000, 80_000, 90_000, 100_000]);
  assert.deepEqual(checkpoints(25), [3, 5, 8, 10, 13, 15, 18, 20, 23, 25]);
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
