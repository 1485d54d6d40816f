/**
 * PostgreSQL's MD5 password method (AuthenticationMD5Password).
 *
 * The stored hash is "md5" + hex(md5(password || username)); over the wire the client sends
 * "md5" + hex(md5(hex-part-of-stored-hash || 4-byte salt)). Knowing the stored hash is therefore
 * enough to answer a challenge, which is how the pooler logs in to PostgreSQL for its clients.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

const MD5_HASH = /^md5[0-9a-f]{32}$/;

const md5Hex = (...parts: Buffer[]): string => {
  const h = createHash('md5');
  for (const p of parts) h.update(p);
  return h.digest('hex');
};

/** Whether `s` has the shape of a stored MD5 password ("md5" + 32 lowercase hex digits). */
export function isMd5Hash(s: string): boolean {
  return MD5_HASH.test(s);
}

/** The text PostgreSQL stores in pg_authid.rolpassword for an MD5 role. */
export function md5PasswordHash(password: string, username: string): string {
  return 'md5' + md5Hex(Buffer.from(password + username, 'utf8'));
}

/**
 * The PasswordMessage payload answering an MD5 challenge. Like PostgreSQL, a value that already
 * looks like a stored hash is taken as the hash (pass-the-hash), not as a plaintext password.
 */
export function md5Response(passwordOrHash: string, username: string, salt: Buffer): string {
  const hash = isMd5Hash(passwordOrHash) ? passwordOrHash : md5PasswordHash(passwordOrHash, username);
  return 'md5' + md5Hex(Buffer.from(hash.slice(3), 'latin1'), salt);
}

/** Checks a client's answer to the challenge `salt` against the stored hash. */
export function verifyMd5Response(storedHash: string, salt: Buffer, response: string): boolean {
  if (!isMd5Hash(storedHash)) return false;
  const expected = Buffer.from(md5Response(storedHash, '', salt), 'latin1');
  const got = Buffer.from(response, 'utf8');
  return got.length === expected.length && timingSafeEqual(got, expected);
}
