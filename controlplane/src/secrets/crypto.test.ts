import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { isCpError } from '../errors.js';
import { open, seal } from './crypto.js';
import { parseSecretsKey } from './key-file.js';
import { SecretsSealer } from './sealer.js';

test('seal/open round-trips and the box does not contain the plaintext', () => {
  const key = randomBytes(32);
  const box = seal(key, 'hunter2-secret', 'doorman/secrets/3');
  assert.ok(!JSON.stringify(box).includes('hunter2'));
  assert.equal(open(key, box, 'doorman/secrets/3'), 'hunter2-secret');
});

test('a wrong key, another generation or a flipped bit fail as SECRETS_CORRUPT', () => {
  const key = randomBytes(32);
  const box = seal(key, 'x', 'doorman/secrets/1');
  assert.throws(() => open(randomBytes(32), box, 'doorman/secrets/1'), (e) => isCpError(e, 'SECRETS_CORRUPT'));
  assert.throws(() => open(key, box, 'doorman/secrets/2'), (e) => isCpError(e, 'SECRETS_CORRUPT'));
  const data = Buffer.from(box.data, 'base64');
  data[0] = (data[0] ?? 0) ^ 1;
  assert.throws(() => open(key, { ...box, data: data.toString('base64') }, 'doorman/secrets/1'), (e) => isCpError(e, 'SECRETS_CORRUPT'));
});

test('key file: 64 hex digits or base64 of 32 bytes; anything else names the flag', () => {
  const raw = randomBytes(32);
  assert.deepEqual(parseSecretsKey(raw.toString('hex')), raw);
  assert.deepEqual(parseSecretsKey(`${raw.toString('base64')}\n`), raw);
  assert.throws(() => parseSecretsKey('abcd'), /--secrets-key-file: the key must be 32 bytes/);
});

test('sealer binds a set to its generation', () => {
  const sealer = new SecretsSealer(randomBytes(32));
  const set = { adminPassword: 'a', users: { app: { u: { password: 'p', serverPassword: '' } } } };
  assert.deepEqual(sealer.open(sealer.seal(set, 4), 4), set);
  assert.throws(() => sealer.open(sealer.seal(set, 4), 5), (e) => isCpError(e, 'SECRETS_CORRUPT'));
});
