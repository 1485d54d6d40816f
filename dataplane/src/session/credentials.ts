/**
 * A configured user's secrets, decoded once per config load: what clients must prove (client side) and
 * what Doorman answers when PostgreSQL asks for a password (server side).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { UserConfig } from '@doorman/proto';
import { md5PasswordHash } from '../auth/md5.js';
import { makeScramVerifier, parseScramVerifier, saltedPassword, type ScramVerifier } from '../auth/scram.js';
import { parseStoredPassword, type StoredPassword } from '../auth/stored-password.js';

export interface ServerCredentials {
  username: string;
  /** Plaintext password for PostgreSQL, when known. */
  password: string | null;
  /** An MD5 hash usable for md5 authentication only (pass-the-hash), when that is all we have. */
  md5Hash: string | null;
}

export interface ClientCredentials {
  stored: StoredPassword;
  /** Verifier clients are checked against with SCRAM (derived once from a plaintext password). */
  scram: ScramVerifier | null;
}

export interface UserCredentials {
  client: ClientCredentials;
  server: ServerCredentials;
}

/** Decodes a user's passwords; throws with the reason when the configured value is malformed. */
export function userCredentials(user: UserConfig): UserCredentials {
  const stored = parseStoredPassword(user.password);
  let scram: ScramVerifier | null = null;
  if (stored.kind === 'scram') scram = stored.verifier;
  else if (stored.kind === 'plain') scram = parseScramVerifier(makeScramVerifier(stored.password));
  let password = user.serverPassword;
  let md5Hash: string | null = null;
  if (password === null && user.serverUsername === user.username) {
    if (stored.kind === 'plain') password = stored.password;
    else if (stored.kind === 'md5') md5Hash = stored.hash;
  }
  return { client: { stored, scram }, server: { username: user.serverUsername, password, md5Hash } };
}

function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Checks a cleartext password (auth method `password`) against whatever form the config stores. */
export function verifyCleartext(c: ClientCredentials, username: string, password: string): boolean {
  const s = c.stored;
  switch (s.kind) {
    case 'plain':
      return safeEqual(Buffer.from(s.password), Buffer.from(password));
    case 'md5':
      return safeEqual(Buffer.from(s.hash), Buffer.from(md5PasswordHash(password, username)));
    case 'scram': {
      const v = s.verifier;
      const clientKey = createHmac('sha256', saltedPassword(password, v.salt, v.iterations)).update('Client Key').digest();
      return safeEqual(createHash('sha256').update(clientKey).digest(), v.storedKey);
    }
    case 'none':
      return false;
  }
}
