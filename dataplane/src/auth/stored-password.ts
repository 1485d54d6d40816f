/**
 * A user's password as the configuration (or an auth query) gives it, classified the way
 * PostgreSQL classifies pg_authid.rolpassword: an MD5 hash, a SCRAM verifier, or plaintext.
 */
import { isMd5Hash } from './md5.js';
import { checkScramVerifier, SCRAM_SHA_256, type ScramVerifier } from './scram.js';

export type StoredPassword =
  | { kind: 'none' }
  | { kind: 'plain'; password: string }
  | { kind: 'md5'; hash: string }
  | { kind: 'scram'; verifier: ScramVerifier; text: string };

/**
 * Classifies a stored password. Unlike PostgreSQL, which would quietly take a damaged verifier
 * for a plaintext password, a value starting "SCRAM-SHA-256$" that does not parse is an error:
 * it is almost surely a mangled copy of a real verifier. The message never repeats the value.
 */
export function parseStoredPassword(s: string): StoredPassword {
  if (s === '') return { kind: 'none' };
  if (isMd5Hash(s)) return { kind: 'md5', hash: s };
  if (s.startsWith(`${SCRAM_SHA_256}$`)) {
    const r = checkScramVerifier(s);
    if (!r.ok) throw new Error(`invalid SCRAM-SHA-256 verifier: ${r.error}`);
    return { kind: 'scram', verifier: r.verifier, text: s };
  }
  return { kind: 'plain', password: s };
}
