import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from './errors.js';
import { parseSize } from './size.js';

function issueOf(v: unknown): string {
  try {
    parseSize(v, 'general.max_message_size');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.deepEqual(e.issues.map((i) => i.path), ['general.max_message_size']);
    return e.issues[0].message;
  }
  assert.fail(`${JSON.stringify(v)} was accepted`);
}

const K = 1024;
const M = 1024 * K;
const G = 1024 * M;

test('bare integers are bytes', () => {
  assert.equal(parseSize(0, 'x'), 0);
  assert.equal(parseSize(1048576, 'x'), M);
  assert.equal(parseSize('4096', 'x'), 4096);
});

test('every suffix, 1024-based, case-insensitive', () => {
  const cases: Array<[string, number]> = [
    ['10B', 10],
    ['10b', 10],
    ['1K', K],
    ['1k', K],
    ['1KB', K],
    ['1kb', K],
    ['1KiB', K],
    ['1kib', K],
    ['1M', M],
    ['1MB', M],
    ['1Mb', M],
    ['1MiB', M],
    ['1G', G],
    ['1GB', G],
    ['1GiB', G],
    ['2gib', 2 * G],
    ['256 MB', 256 * M],
    [' 64 KB ', 64 * K],
  ];
  for (const [text, bytes] of cases) assert.equal(parseSize(text, 'x'), bytes, text);
});

test('junk is rejected with what was expected and what was found', () => {
  const expected = 'must be a size such as "64KB", "256 MB", "1GiB" or a whole number of bytes';
  assert.equal(issueOf('abc'), `${expected}, got "abc"`);
  assert.equal(issueOf(''), `${expected}, got ""`);
  assert.equal(issueOf('5TB'), `${expected}, got "5TB"`);
  assert.equal(issueOf('5x'), `${expected}, got "5x"`);
  assert.equal(issueOf('1.5MB'), `${expected}, got "1.5MB"`);
  assert.equal(issueOf('MB'), `${expected}, got "MB"`);
  assert.equal(issueOf('1 M B'), `${expected}, got "1 M B"`);
  assert.equal(issueOf(false), `${expected}, got false`);
  assert.equal(issueOf({}), `${expected}, got a map`);
  assert.equal(issueOf(Infinity), `${expected}, got Infinity`);
});

test('negatives and fractions of a byte are rejected', () => {
  assert.equal(issueOf(-1), 'must not be negative, got -1');
  assert.equal(issueOf('-5MB'), 'must not be negative, got "-5MB"');
  assert.equal(issueOf(1.5), 'must be a whole number of bytes, got 1.5');
});

test('sizes beyond exact integers are rejected', () => {
  assert.equal(issueOf('99999999999G'), 'is too large, got "99999999999G"');
});
