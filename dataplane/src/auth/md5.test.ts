import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isMd5Hash, md5PasswordHash, md5Response, verifyMd5Response } from './md5.js';

// Expected values computed outside this code base (Python hashlib) and, for "md5aa05...", by
// PostgreSQL 15 itself (CREATE ROLE r3 PASSWORD 'secret' with password_encryption = 'md5').
const SALT = Buffer.from([0x01, 0x02, 0xfe, 0xff]);

test('md5PasswordHash', () => {
  assert.equal(md5PasswordHash('secret', 'postgres'), 'md553f48b7c4b76a86ce72276c5755f217d');
  assert.equal(md5PasswordHash('secret', 'r3'), 'md5aa057166a85ba8ef0a110bc8e4f1ee69');
  assert.equal(md5PasswordHash('pässwörd', 'jürgen'), 'md5e325c8e2288c2780dac1cbba097888d5');
});

test('md5Response from a plaintext password and from the stored hash (pass-the-hash)', () => {
  assert.equal(md5Response('secret', 'postgres', SALT), 'md56c143a9fdb92d561bbca5c93456233c7');
  assert.equal(md5Response('md553f48b7c4b76a86ce72276c5755f217d', 'postgres', SALT), 'md56c143a9fdb92d561bbca5c93456233c7');
  // With a hash, the user name plays no part.
  assert.equal(md5Response('md553f48b7c4b76a86ce72276c5755f217d', 'someone', SALT), 'md56c143a9fdb92d561bbca5c93456233c7');
  assert.equal(
    md5Response('md5aa057166a85ba8ef0a110bc8e4f1ee69', 'r3', Buffer.from([0xde, 0xad, 0xbe, 0xef])),
    'md520fd72a683370f4ba77c1d6b5370fb2d',
  );
});

test('verifyMd5Response', () => {
  const stored = 'md553f48b7c4b76a86ce72276c5755f217d';
  assert.equal(verifyMd5Response(stored, SALT, 'md56c143a9fdb92d561bbca5c93456233c7'), true);
  assert.equal(verifyMd5Response(stored, SALT, md5Response('secret', 'postgres', SALT)), true);
  assert.equal(verifyMd5Response(stored, SALT, md5Response('Secret', 'postgres', SALT)), false);
  assert.equal(verifyMd5Response(stored, Buffer.from([1, 2, 3, 4]), 'md56c143a9fdb92d561bbca5c93456233c7'), false);
  assert.equal(verifyMd5Response(stored, SALT, 'md56c143a9fdb92d561bbca5c93456233c'), false);
  assert.equal(verifyMd5Response(stored, SALT, 'md56c143a9fdb92d561bbca5c93456233c7 '), false);
  assert.equal(verifyMd5Response(stored, SALT, 'MD56C143A9FDB92D561BBCA5C93456233C7'), false);
  assert.equal(verifyMd5Response(stored, SALT, ''), false);
  // The stored value must be a hash; a plaintext password never verifies.
  assert.equal(verifyMd5Response('secret', SALT, md5Response('secret', 'postgres', SALT)), false);
});

test('isMd5Hash', () => {
  assert.equal(isMd5Hash('md553f48b7c4b76a86ce72276c5755f217d'), true);
  assert.equal(isMd5Hash('md553F48B7C4B76A86CE72276C5755F217D'), false);
  assert.equal(isMd5Hash('md553f48b7c4b76a86ce72276c5755f217'), false);
  assert.equal(isMd5Hash('md553f48b7c4b76a86ce72276c5755f217dd'), false);
  assert.equal(isMd5Hash('xx553f48b7c4b76a86ce72276c5755f217d'), false);
});
