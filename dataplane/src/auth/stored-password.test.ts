import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseStoredPassword } from './stored-password.js';

const SCRAM =
  'SCRAM-SHA-256$4096:b1TCGu2ABLpZTSuB023c3A==$huAdMhicqfBV1UdO6DQnkPQRZl0oFqN27zw7ietfUH8=:sG9v9cjIc4oP+WyvvRuf2jBWYTT/MYP6HEknpJ4jwdU=';

test('empty is none', () => {
  assert.deepEqual(parseStoredPassword(''), { kind: 'none' });
});

test('MD5 hashes', () => {
  assert.deepEqual(parseStoredPassword('md553f48b7c4b76a86ce72276c5755f217d'), { kind: 'md5', hash: 'md553f48b7c4b76a86ce72276c5755f217d' });
});

test('SCRAM verifiers', () => {
  assert.deepEqual(parseStoredPassword(SCRAM), {
    kind: 'scram',
    text: SCRAM,
    verifier: {
      iterations: 4096,
      salt: Buffer.from('b1TCGu2ABLpZTSuB023c3A==', 'base64'),
      storedKey: Buffer.from('huAdMhicqfBV1UdO6DQnkPQRZl0oFqN27zw7ietfUH8=', 'base64'),
      serverKey: Buffer.from('sG9v9cjIc4oP+WyvvRuf2jBWYTT/MYP6HEknpJ4jwdU=', 'base64'),
    },
  });
});

test('everything else is a plaintext password', () => {
  for (const s of [
    'secret',
    ' ',
    'md5',
    'MD553F48B7C4B76A86CE72276C5755F217D', // PostgreSQL only takes lowercase hex as a hash
    'md553f48b7c4b76a86ce72276c5755f217', // one digit short
    'md553f48b7c4b76a86ce72276c5755f217dx',
    'scram-sha-256$4096:abc', // the prefix is case-sensitive
    'SCRAM-SHA-256',
  ]) {
    assert.deepEqual(parseStoredPassword(s), { kind: 'plain', password: s }, s);
  }
});

test('a malformed SCRAM verifier is an error naming why, without echoing the value', () => {
  const cases: Array<[string, string]> = [
    ['SCRAM-SHA-256$', 'invalid SCRAM-SHA-256 verifier: expected "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>"'],
    [SCRAM.replace('$4096:', '$0:'), 'invalid SCRAM-SHA-256 verifier: invalid iteration count "0"'],
    [SCRAM.replace('b1TCGu2ABLpZTSuB023c3A==', 'b1TC!u2ABLpZTSuB023c3A=='), 'invalid SCRAM-SHA-256 verifier: salt is not valid base64'],
    [SCRAM.slice(0, -4), 'invalid SCRAM-SHA-256 verifier: ServerKey is not 32 bytes of base64'],
  ];
  for (const [input, message] of cases) {
    assert.throws(
      () => parseStoredPassword(input),
      (e: unknown) => e instanceof Error && e.message === message,
      input,
    );
  }
});
