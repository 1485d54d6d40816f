import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDuration } from './duration.js';
import { ConfigError } from './errors.js';

function issueOf(v: unknown): string {
  try {
    parseDuration(v, 'general.connect_timeout');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.issues.length, 1);
    assert.equal(e.issues[0].path, 'general.connect_timeout');
    assert.equal(e.message, `general.connect_timeout: ${e.issues[0].message}`);
    return e.issues[0].message;
  }
  assert.fail(`${JSON.stringify(v)} was accepted`);
}

test('bare integers are milliseconds', () => {
  assert.equal(parseDuration(0, 'x'), 0);
  assert.equal(parseDuration(5000, 'x'), 5000);
  assert.equal(parseDuration('5000', 'x'), 5000);
  assert.equal(parseDuration(' 250 ', 'x'), 250);
});

test('single units', () => {
  const cases: Array<[string, number]> = [
    ['250ms', 250],
    ['30s', 30_000],
    ['5m', 300_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['1000us', 1],
    ['0s', 0],
    ['5 ms', 5],
    ['  10s  ', 10_000],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text, 'x'), ms, text);
});

test('units are case-insensitive, M is minutes as in PgDoorman', () => {
  assert.equal(parseDuration('5S', 'x'), 5000);
  assert.equal(parseDuration('5MS', 'x'), 5);
  assert.equal(parseDuration('5M', 'x'), 300_000);
  assert.equal(parseDuration('1H', 'x'), 3_600_000);
  assert.equal(parseDuration('1D', 'x'), 86_400_000);
});

test('compound durations', () => {
  assert.equal(parseDuration('1m30s', 'x'), 90_000);
  assert.equal(parseDuration('1h 30m', 'x'), 5_400_000);
  assert.equal(parseDuration('1d2h3m4s5ms', 'x'), 86_400_000 + 7_200_000 + 180_000 + 4_000 + 5);
});

test('decimals that come to whole milliseconds', () => {
  assert.equal(parseDuration('1.5s', 'x'), 1500);
  assert.equal(parseDuration('1.1s', 'x'), 1100);
  assert.equal(parseDuration('0.25m', 'x'), 15_000);
  assert.equal(parseDuration('0.001s', 'x'), 1);
});

test('sub-millisecond values are rejected', () => {
  assert.equal(issueOf('1.5ms'), 'must be a whole number of milliseconds, got "1.5ms"');
  assert.equal(issueOf('0.0001s'), 'must be a whole number of milliseconds, got "0.0001s"');
  assert.equal(issueOf('500us'), 'must be a whole number of milliseconds, got "500us"');
  assert.equal(issueOf(1.5), 'must be a whole number of milliseconds, got 1.5');
});

test('negatives are rejected', () => {
  assert.equal(issueOf(-1), 'must not be negative, got -1');
  assert.equal(issueOf('-5s'), 'must not be negative, got "-5s"');
  assert.equal(issueOf('-100'), 'must not be negative, got "-100"');
});

test('junk is rejected with what was expected and what was found', () => {
  const expected = 'must be a duration such as "250ms", "30s", "5m", "1m30s" or a whole number of milliseconds';
  assert.equal(issueOf('abc'), `${expected}, got "abc"`);
  assert.equal(issueOf(''), `${expected}, got ""`);
  assert.equal(issueOf('5x'), `${expected}, got "5x"`);
  assert.equal(issueOf('5sx'), `${expected}, got "5sx"`);
  assert.equal(issueOf('s'), `${expected}, got "s"`);
  assert.equal(issueOf('1.5'), `${expected}, got "1.5"`);
  assert.equal(issueOf('.5s'), `${expected}, got ".5s"`);
  assert.equal(issueOf(true), `${expected}, got true`);
  assert.equal(issueOf(null), `${expected}, got nothing`);
  assert.equal(issueOf([1]), `${expected}, got a list`);
  assert.equal(issueOf({ s: 1 }), `${expected}, got a map`);
  assert.equal(issueOf(Infinity), `${expected}, got Infinity`);
  assert.equal(issueOf(Number.NaN), `${expected}, got NaN`);
});

test('compound units must go from largest to smallest, once each', () => {
  const msg = (v: string) => `must list units from largest to smallest, each at most once, got "${v}"`;
  assert.equal(issueOf('30s1m'), msg('30s1m'));
  assert.equal(issueOf('1s1s'), msg('1s1s'));
  assert.equal(issueOf('1ms1s'), msg('1ms1s'));
});

test('values beyond exact integers are rejected', () => {
  assert.equal(issueOf('999999999999d'), 'is too large, got "999999999999d"');
  assert.equal(issueOf(2 ** 60), `is too large, got ${2 ** 60}`);
});
