/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it, in both roles:
 *   - ScramServerExchange: the pooler checks a client against a stored verifier;
 *   - ScramClientExchange: the pooler logs in to PostgreSQL, with a password or with the
 *     ClientKey recovered from a client's successful exchange (passthrough).
 *
 * Channel binding is never offered (only the mechanism "SCRAM-SHA-256" is advertised), so a
 * client may send gs2 header "n,," or "y,," (it could bind, but we did not offer it); "p=" is
 * refused. Like PostgreSQL, the user name inside client-first-message is ignored: the startup
 * packet already named the role, and libpq sends "n=" empty.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';

/** A protocol failure seen by the client side of an exchange. */
export class ScramError extends Error {
  override name = 'ScramError';
}

/** What PostgreSQL stores in pg_authid.rolpassword for a SCRAM role, decoded. */
export interface ScramVerifier {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

export type ScramStep = { ok: true; reply: string } | { ok: false; error: string };

const KEY_LENGTH = 32;
const MAX_ITERATIONS = 0x7fffffff;
/** PostgreSQL's nonces carry 18 random bytes (24 base64 characters). */
const NONCE_BYTES = 18;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** RFC 5802 "printable": %x21-7E except ",". */
const PRINTABLE = /^[\x21-\x2b\x2d-\x7e]+$/;

const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();
const hmac = (key: Buffer, data: Buffer | string): Buffer => createHmac('sha256', key).update(data).digest();

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

function decodeBase64(s: string): Buffer | null {
  return s.length > 0 && BASE64.test(s) ? Buffer.from(s, 'base64') : null;
}

function parseIterations(s: string): number | null {
  if (!/^[0-9]{1,10}$/.test(s)) return null;
  const n = Number(s);
  return n >= 1 && n <= MAX_ITERATIONS ? n : null;
}

// ---------------------------------------------------------------------------------------------
// SASLprep (RFC 4013), approximated.
//
// PostgreSQL runs the password through SASLprep and, when the result is not valid (prohibited
// or unassigned characters, bad bidi, invalid UTF-8), silently uses the raw bytes instead. We do
// the mapping, NFKC and the prohibited/unassigned checks; unassigned is judged by the JavaScript
// engine's Unicode version (newer than stringprep's 3.2) and the bidi rule is not checked, so a
// few exotic passwords may hash differently than in PostgreSQL. ASCII passwords are exact.
// ---------------------------------------------------------------------------------------------

/** RFC 3454 C.1.2, mapped to U+0020. */
const NON_ASCII_SPACE = /[\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000]/gu;
/** RFC 3454 B.1, mapped to nothing. */
const MAPPED_TO_NOTHING = /[\u00ad\u034f\u1806\u180b-\u180d\u200b-\u200d\u2060\ufe00-\ufe0f\ufeff]/gu;
const UNASSIGNED = /\p{Cn}/u;

/** RFC 3454 tables C.2.1 through C.9 (C.1.2 is already mapped away). */
function isProhibited(cp: number): boolean {
  return (
    cp <= 0x1f ||
    (cp >= 0x7f && cp <= 0x9f) ||
    cp === 0x0340 || cp === 0x0341 ||
    cp === 0x06dd || cp === 0x070f || cp === 0x180e ||
    (cp >= 0x200c && cp <= 0x200f) ||
    (cp >= 0x2028 && cp <= 0x202e) ||
    (cp >= 0x2060 && cp <= 0x2063) ||
    (cp >= 0x206a && cp <= 0x206f) ||
    (cp >= 0x2ff0 && cp <= 0x2ffb) ||
    (cp >= 0xd800 && cp <= 0xf8ff) || // surrogates and the BMP private use area
    (cp >= 0xfdd0 && cp <= 0xfdef) ||
    cp === 0xfeff ||
    (cp >= 0xfff9 && cp <= 0xfffd) ||
    (cp & 0xfffe) === 0xfffe || // the last two code points of every plane
    (cp >= 0x1d173 && cp <= 0x1d17a) ||
    cp === 0xe0001 || (cp >= 0xe0020 && cp <= 0xe007f) ||
    cp >= 0xf0000
  );
}

/** The bytes PostgreSQL feeds to PBKDF2 for this password. */
export function saslPrep(password: string): Buffer {
  if (/^[\x00-\x7f]*$/.test(password)) return Buffer.from(password, 'utf8');
  const prepared = password.replace(NON_ASCII_SPACE, ' ').replace(MAPPED_TO_NOTHING, '').normalize('NFKC');
  for (const ch of prepared) {
    if (isProhibited(ch.codePointAt(0)!) || UNASSIGNED.test(ch)) return Buffer.from(password, 'utf8');
  }
  return Buffer.from(prepared, 'utf8');
}

// ---------------------------------------------------------------------------------------------
// Key derivation
// ---------------------------------------------------------------------------------------------

const SALTED_CACHE_LIMIT = 256;
/** Every server connection of a pool logs in with the same password; PBKDF2 is the cost. */
const saltedCache = new Map<string, Buffer>();

/** Hi(Normalize(password), salt, i) of RFC 5802, memoized (bounded, least recently used). */
export function saltedPassword(password: string, salt: Buffer, iterations: number): Buffer {
  // Base64 has no ':', so the key is unambiguous whatever the password holds.
  const key = `${iterations}:${salt.toString('base64')}:${password}`;
  const hit = saltedCache.get(key);
  if (hit !== undefined) {
    saltedCache.delete(key);
    saltedCache.set(key, hit);
    return Buffer.from(hit);
  }
  const salted = pbkdf2Sync(saslPrep(password), salt, iterations, KEY_LENGTH, 'sha256');
  if (saltedCache.size >= SALTED_CACHE_LIMIT) saltedCache.delete(saltedCache.keys().next().value!);
  saltedCache.set(key, salted);
  return Buffer.from(salted);
}

function keysFromSalted(salted: Buffer): { clientKey: Buffer; serverKey: Buffer } {
  return { clientKey: hmac(salted, 'Client Key'), serverKey: hmac(salted, 'Server Key') };
}

// ---------------------------------------------------------------------------------------------
// Verifier text: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
// ---------------------------------------------------------------------------------------------

/** Decodes a verifier, or says what is wrong with it. */
export function checkScramVerifier(s: string): { ok: true; verifier: ScramVerifier } | { ok: false; error: string } {
  const parts = s.split('$');
  if (parts[0] !== SCRAM_SHA_256) return { ok: false, error: `does not start with "${SCRAM_SHA_256}$"` };
  if (parts.length !== 3) return { ok: false, error: 'expected "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>"' };
  const [iterText, saltText, ...restA] = parts[1]!.split(':');
  const [storedText, serverText, ...restB] = parts[2]!.split(':');
  if (saltText === undefined || restA.length > 0) return { ok: false, error: 'expected "<iterations>:<salt>" after the mechanism' };
  if (serverText === undefined || restB.length > 0) return { ok: false, error: 'expected "<StoredKey>:<ServerKey>" at the end' };
  const iterations = parseIterations(iterText!);
  if (iterations === null) return { ok: false, error: `invalid iteration count "${iterText}"` };
  const salt = decodeBase64(saltText);
  if (salt === null) return { ok: false, error: 'salt is not valid base64' };
  const storedKey = decodeBase64(storedText!);
  if (storedKey === null || storedKey.length !== KEY_LENGTH) return { ok: false, error: 'StoredKey is not 32 bytes of base64' };
  const serverKey = decodeBase64(serverText);
  if (serverKey === null || serverKey.length !== KEY_LENGTH) return { ok: false, error: 'ServerKey is not 32 bytes of base64' };
  return { ok: true, verifier: { iterations, salt, storedKey, serverKey } };
}

export function parseScramVerifier(s: string): ScramVerifier | null {
  const r = checkScramVerifier(s);
  return r.ok ? r.verifier : null;
}

export function makeScramVerifier(password: string, iterations = 4096, salt: Buffer = randomBytes(16)): string {
  const { clientKey, serverKey } = keysFromSalted(saltedPassword(password, salt, iterations));
  return `${SCRAM_SHA_256}$${iterations}:${salt.toString('base64')}$${sha256(clientKey).toString('base64')}:${serverKey.toString('base64')}`;
}

// ---------------------------------------------------------------------------------------------
// Attribute lists ("a=value,b=value")
// ---------------------------------------------------------------------------------------------

interface Attribute {
  name: string;
  value: string;
}

function splitAttributes(s: string): Attribute[] | null {
  const out: Attribute[] = [];
  for (const part of s.split(',')) {
    if (!/^[A-Za-z]=/.test(part)) return null;
    out.push({ name: part[0]!, value: part.slice(2) });
  }
  return out;
}

function makeNonce(nonce: Buffer | string | undefined): string {
  if (typeof nonce === 'string') {
    if (!PRINTABLE.test(nonce)) throw new ScramError('a nonce must be printable ASCII without ","');
    return nonce;
  }
  return (nonce ?? randomBytes(NONCE_BYTES)).toString('base64');
}

// ---------------------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------------------

const enum ServerState {
  ExpectFirst,
  ExpectFinal,
  Done,
}

/**
 * One SCRAM exchange in which the pooler plays the server. Messages are taken as bytes and read
 * as latin1 so the AuthMessage is rebuilt byte for byte whatever the client sent.
 */
export class ScramServerExchange {
  /** The client's ClientKey, known once handleClientFinal succeeded. */
  clientKey: Buffer | null = null;

  private state = ServerState.ExpectFirst;
  private readonly serverNonce: string;
  private gs2Header = '';
  private clientFirstBare = '';
  private serverFirst = '';
  private nonce = '';

  /** @param nonce random bytes for the server nonce (base64-encoded), or for tests the literal nonce text. */
  constructor(
    private readonly verifier: ScramVerifier,
    nonce?: Buffer | string,
  ) {
    this.serverNonce = makeNonce(nonce);
  }

  handleClientFirst(message: Buffer): ScramStep {
    if (this.state !== ServerState.ExpectFirst) return this.fail('unexpected SCRAM client-first-message');
    const text = message.toString('latin1');
    const flag = text[0];
    if (flag === 'p') return this.fail('channel binding is not supported: SCRAM-SHA-256-PLUS was not offered');
    if ((flag !== 'n' && flag !== 'y') || text[1] !== ',') return this.fail('malformed SCRAM message: invalid GS2 header');
    if (text.startsWith('a=', 2)) return this.fail('client uses an authorization identity, which is not supported');
    if (text[2] !== ',') return this.fail('malformed SCRAM message: invalid GS2 header');
    this.gs2Header = text.slice(0, 3);
    this.clientFirstBare = text.slice(3);

    const attrs = splitAttributes(this.clientFirstBare);
    if (attrs === null) return this.fail('malformed SCRAM message: invalid attribute list in client-first-message');
    if (attrs[0]?.name === 'm') return this.fail('client requires an unsupported SCRAM extension');
    if (attrs[0]?.name !== 'n') return this.fail('malformed SCRAM message: expected attribute "n" (user name)');
    if (attrs[1]?.name !== 'r') return this.fail('malformed SCRAM message: expected attribute "r" (nonce)');
    const clientNonce = attrs[1].value;
    if (!PRINTABLE.test(clientNonce)) return this.fail('malformed SCRAM message: nonce is empty or not printable');

    this.nonce = clientNonce + this.serverNonce;
    const { salt, iterations } = this.verifier;
    this.serverFirst = `r=${this.nonce},s=${salt.toString('base64')},i=${iterations}`;
    this.state = ServerState.ExpectFinal;
    return { ok: true, reply: this.serverFirst };
  }

  handleClientFinal(message: Buffer): ScramStep {
    if (this.state !== ServerState.ExpectFinal) return this.fail('unexpected SCRAM client-final-message');
    const text = message.toString('latin1');
    const attrs = splitAttributes(text);
    if (attrs === null || attrs.length < 3) return this.fail('malformed SCRAM message: invalid attribute list in client-final-message');
    const [binding, nonce] = attrs;
    const proofAttr = attrs[attrs.length - 1]!;
    if (binding!.name !== 'c') return this.fail('malformed SCRAM message: expected attribute "c" (channel binding)');
    if (binding!.value !== Buffer.from(this.gs2Header, 'latin1').toString('base64')) {
      return this.fail('SCRAM channel binding check failed');
    }
    if (nonce!.name !== 'r') return this.fail('malformed SCRAM message: expected attribute "r" (nonce)');
    if (nonce!.value !== this.nonce) return this.fail('SCRAM nonce mismatch');
    if (proofAttr.name !== 'p') return this.fail('malformed SCRAM message: expected attribute "p" (proof) last');
    const proof = decodeBase64(proofAttr.value);
    if (proof === null || proof.length !== KEY_LENGTH) return this.fail('malformed SCRAM message: invalid proof');

    const withoutProof = text.slice(0, text.lastIndexOf(','));
    const authMessage = Buffer.from(`${this.clientFirstBare},${this.serverFirst},${withoutProof}`, 'latin1');
    const { storedKey, serverKey } = this.verifier;
    const clientKey = xor(proof, hmac(storedKey, authMessage));
    if (!timingSafeEqual(sha256(clientKey), storedKey)) return this.fail('password authentication failed');

    this.clientKey = clientKey;
    this.state = ServerState.Done;
    return { ok: true, reply: `v=${hmac(serverKey, authMessage).toString('base64')}` };
  }

  private fail(error: string): ScramStep {
    this.state = ServerState.Done;
    return { ok: false, error };
  }
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

/** Keys that stand in for a password: ClientKey from a client's exchange, ServerKey from the verifier. */
export interface ScramKeys {
  clientKey: Buffer;
  serverKey: Buffer;
}

const enum ClientState {
  Start,
  ExpectServerFirst,
  ExpectServerFinal,
  Done,
}

/** One SCRAM exchange in which the pooler plays the client (logging in to PostgreSQL). */
export class ScramClientExchange {
  private state = ClientState.Start;
  private readonly clientNonce: string;
  private readonly clientFirstBare: string;
  private expectedServerSignature: Buffer | null = null;

  /** @param nonce random bytes for the client nonce (base64-encoded), or for tests the literal nonce text. */
  constructor(
    private readonly credential: string | ScramKeys,
    nonce?: Buffer | string,
  ) {
    if (typeof credential !== 'string' && (credential.clientKey.length !== KEY_LENGTH || credential.serverKey.length !== KEY_LENGTH)) {
      throw new ScramError('ClientKey and ServerKey must be 32 bytes');
    }
    this.clientNonce = makeNonce(nonce);
    this.clientFirstBare = `n=,r=${this.clientNonce}`;
  }

  /** client-first-message, to send in SASLInitialResponse. */
  clientFirst(): string {
    if (this.state !== ClientState.Start) throw new ScramError('clientFirst() called twice');
    this.state = ClientState.ExpectServerFirst;
    return `n,,${this.clientFirstBare}`;
  }

  /** Takes server-first-message (AuthenticationSASLContinue), returns client-final-message. */
  handleServerFirst(message: string): string {
    if (this.state !== ClientState.ExpectServerFirst) throw new ScramError('unexpected server-first-message');
    this.state = ClientState.Done;
    if (message.startsWith('e=')) throw new ScramError(`server error: ${message.slice(2)}`);
    const attrs = splitAttributes(message);
    if (attrs === null) throw new ScramError('malformed server-first-message');
    if (attrs[0]?.name === 'm') throw new ScramError('server requires an unsupported SCRAM extension');
    const [r, s, i] = attrs;
    if (r?.name !== 'r' || s?.name !== 's' || i?.name !== 'i') {
      throw new ScramError('malformed server-first-message: expected attributes r, s, i');
    }
    if (!PRINTABLE.test(r.value) || !r.value.startsWith(this.clientNonce) || r.value.length === this.clientNonce.length) {
      throw new ScramError('server nonce does not extend the client nonce');
    }
    const salt = decodeBase64(s.value);
    if (salt === null) throw new ScramError('malformed server-first-message: invalid salt');
    const iterations = parseIterations(i.value);
    if (iterations === null) throw new ScramError(`malformed server-first-message: invalid iteration count "${i.value}"`);

    const { clientKey, serverKey } =
      typeof this.credential === 'string' ? keysFromSalted(saltedPassword(this.credential, salt, iterations)) : this.credential;
    const withoutProof = `c=biws,r=${r.value}`;
    const authMessage = Buffer.from(`${this.clientFirstBare},${message},${withoutProof}`, 'utf8');
    const proof = xor(clientKey, hmac(sha256(clientKey), authMessage));
    this.expectedServerSignature = hmac(serverKey, authMessage);
    this.state = ClientState.ExpectServerFinal;
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Checks server-final-message (AuthenticationSASLFinal); throws unless the server proved itself. */
  verifyServerFinal(message: string): void {
    if (this.state !== ClientState.ExpectServerFinal) throw new ScramError('unexpected server-final-message');
    this.state = ClientState.Done;
    const attrs = splitAttributes(message);
    if (attrs === null) throw new ScramError('malformed server-final-message');
    const first = attrs[0]!;
    if (first.name === 'e') throw new ScramError(`server error: ${first.value}`);
    if (first.name !== 'v') throw new ScramError('malformed server-final-message: expected attribute "v"');
    const signature = decodeBase64(first.value);
    const expected = this.expectedServerSignature!;
    if (signature === null || signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
      throw new ScramError('invalid server signature');
    }
  }
}
