/**
 * Constants of the PostgreSQL frontend/backend protocol (version 3): message type bytes, startup
 * request codes and authentication subtypes, plus the error readers throw on malformed input.
 */

/** Type bytes of messages sent by the client (frontend). */
export const enum FrontendCode {
  Query = 0x51, // 'Q'
  Parse = 0x50, // 'P'
  Bind = 0x42, // 'B'
  Describe = 0x44, // 'D'
  Execute = 0x45, // 'E'
  Close = 0x43, // 'C'
  Sync = 0x53, // 'S'
  Flush = 0x48, // 'H'
  FunctionCall = 0x46, // 'F'
  CopyData = 0x64, // 'd'
  CopyDone = 0x63, // 'c'
  CopyFail = 0x66, // 'f'
  Terminate = 0x58, // 'X'
  /** Also SASLInitialResponse, SASLResponse and GSSResponse: the auth exchange tells them apart. */
  PasswordMessage = 0x70, // 'p'
}

/** Type bytes of messages sent by the server (backend). */
export const enum BackendCode {
  Authentication = 0x52, // 'R'
  ParameterStatus = 0x53, // 'S'
  BackendKeyData = 0x4b, // 'K'
  ReadyForQuery = 0x5a, // 'Z'
  CommandComplete = 0x43, // 'C'
  DataRow = 0x44, // 'D'
  RowDescription = 0x54, // 'T'
  ErrorResponse = 0x45, // 'E'
  NoticeResponse = 0x4e, // 'N'
  NotificationResponse = 0x41, // 'A'
  EmptyQueryResponse = 0x49, // 'I'
  ParseComplete = 0x31, // '1'
  BindComplete = 0x32, // '2'
  CloseComplete = 0x33, // '3'
  NoData = 0x6e, // 'n'
  PortalSuspended = 0x73, // 's'
  ParameterDescription = 0x74, // 't'
  CopyInResponse = 0x47, // 'G'
  CopyOutResponse = 0x48, // 'H'
  CopyBothResponse = 0x57, // 'W'
  CopyData = 0x64, // 'd'
  CopyDone = 0x63, // 'c'
  FunctionCallResponse = 0x56, // 'V'
  NegotiateProtocolVersion = 0x76, // 'v'
}

/** Protocol version codes (major << 16 | minor) and the special request codes of untyped packets. */
export const enum StartupCode {
  PROTOCOL_3_0 = 196608,
  PROTOCOL_3_2 = 196610,
  SSL_REQUEST = 80877103,
  GSSENC_REQUEST = 80877104,
  CANCEL_REQUEST = 80877102,
}

/** Subtype (first int32 of the body) of an Authentication ('R') message. */
export const enum AuthCode {
  Ok = 0,
  CleartextPassword = 3,
  MD5Password = 5,
  SASL = 10,
  SASLContinue = 11,
  SASLFinal = 12,
}

/** Transaction status byte of ReadyForQuery. */
export const enum TxStatus {
  Idle = 0x49, // 'I'
  InTransaction = 0x54, // 'T'
  Failed = 0x45, // 'E'
}

function typeSet(codes: number[]): Uint8Array {
  const set = new Uint8Array(256);
  for (const c of codes) set[c] = 1;
  return set;
}

/** Backend messages that can be long and carry no state the pooler reads: passed on in parts. */
export const BACKEND_STREAMABLE: Uint8Array = typeSet([BackendCode.DataRow, BackendCode.CopyData]);
/** Frontend messages passed on in parts when long (COPY FROM STDIN data). */
export const FRONTEND_STREAMABLE: Uint8Array = typeSet([FrontendCode.CopyData]);

/** A message body that does not match its format; the session answers it with SQLSTATE 08P01. */
export class ProtocolViolation extends Error {
  override name = 'ProtocolViolation';
}

// Wire primitives shared by the codecs. Strings are UTF-8 and NUL-terminated on the wire.

/** Bytes a string takes on the wire, terminator included; a NUL inside it would end it early. */
export function cstringSize(s: string): number {
  if (s.includes('\0')) throw new RangeError('protocol strings cannot contain NUL');
  return Buffer.byteLength(s) + 1;
}

/** Writes `s` and its terminator at `pos` (space already sized with cstringSize); returns the next position. */
export function writeCString(out: Buffer, pos: number, s: string): number {
  const n = out.write(s, pos);
  out[pos + n] = 0;
  return pos + n + 1;
}

/** `s` and its terminator as bytes, to be copied into messages again and again. */
export function cstring(s: string): Buffer {
  const out = Buffer.allocUnsafe(cstringSize(s));
  writeCString(out, 0, s);
  return out;
}

/**
 * Between two buffers, longer ranges are copied by set() on a view and shorter ones byte by byte: a view and
 * set() cost about 60-70 ns whatever the length, the loop about 1.5 ns a byte (Node 20 here), so they break
 * even near 32 bytes. Within one buffer (a slab), copyWithin() makes no view and costs about 20 ns at any length.
 */
const SHORT_COPY = 32;
const SHORT_COPY_WITHIN = 12;

/** Copies src[from, to) into dst at `at`; returns the position after it. */
export function copyRange(src: Buffer, from: number, to: number, dst: Buffer, at: number): number {
  const n = to - from;
  if (n > SHORT_COPY_WITHIN && src === dst) dst.copyWithin(at, from, to);
  else if (n > SHORT_COPY) dst.set(src.subarray(from, to), at);
  else for (let i = 0; i < n; i++) dst[at + i] = src[from + i];
  return at + n;
}

/**
 * The big-endian uint32 at buf[at, at + 4), which the caller has checked is there. Buffer#readUInt32BE
 * validates its offset through a wrapper that showed in profiles of the per-message path.
 */
export function uint32At(buf: Uint8Array, at: number): number {
  return buf[at] * 0x1000000 + ((buf[at + 1] << 16) | (buf[at + 2] << 8) | buf[at + 3]);
}

/** Writes `value` as a big-endian uint32 at buf[at, at + 4), without writeUInt32BE's checks (see uint32At). */
export function writeUint32At(buf: Uint8Array, at: number, value: number): void {
  buf[at] = value >>> 24;
  buf[at + 1] = value >>> 16;
  buf[at + 2] = value >>> 8;
  buf[at + 3] = value;
}

/** Index of the first NUL in buf[pos, end), or -1; never looks at or past `end`. */
export function findNul(buf: Buffer, pos: number, end: number): number {
  for (let i = pos; i < end; i++) if (buf[i] === 0) return i;
  return -1;
}

/** Index of the NUL that ends the string starting at `pos`, searching only below `end`. */
export function nulIndex(buf: Buffer, pos: number, end: number): number {
  const i = findNul(buf, pos, end);
  if (i < 0) throw new ProtocolViolation('string is not NUL-terminated');
  return i;
}

/**
 * Checks that buf[start, end) is one typed message whose length field matches the range, and
 * returns where its body starts. Guards readers against a caller handing them a bad range.
 */
export function bodyStart(buf: Buffer, start: number, end: number): number {
  if (start < 0 || end > buf.length || end - start < 5 || uint32At(buf, start + 1) !== end - start - 1) {
    throw new ProtocolViolation('message length does not match its frame');
  }
  return start + 5;
}

/** The name readName decoded last, as bytes and as the string it gave. */
const NAME_CACHE_BYTES = 64;
const lastNameBytes = Buffer.alloc(NAME_CACHE_BYTES);
let lastNameLength = 0;
let lastName = '';

/**
 * buf[start, end) as UTF-8, for a statement or portal name. A client names the same statement in Bind after
 * Bind; the string of the last name is kept, so reading it again makes no string and needs no new hash for
 * the map lookup that follows (the decode, allocation and hashing showed in profiles of -M prepared).
 */
export function readName(buf: Buffer, start: number, end: number): string {
  const n = end - start;
  if (n === 0) return '';
  if (n === lastNameLength) {
    let i = 0;
    while (i < n && buf[start + i] === lastNameBytes[i]) i++;
    if (i === n) return lastName;
  }
  const name = buf.toString('utf8', start, end);
  if (n <= NAME_CACHE_BYTES) {
    copyRange(buf, start, end, lastNameBytes, 0);
    lastNameLength = n;
    lastName = name;
  }
  return name;
}

/** Reads the string that must fill the rest of the body exactly (its NUL is the last byte). */
export function readFinalCString(buf: Buffer, pos: number, end: number): string {
  const nul = nulIndex(buf, pos, end);
  if (nul !== end - 1) throw new ProtocolViolation('unexpected data after string');
  return buf.toString('utf8', pos, nul);
}

/** A typed message buffer with its header written; the caller fills the `bodySize` bytes after it. */
export function allocMessage(code: number, bodySize: number): Buffer {
  const out = Buffer.allocUnsafe(5 + bodySize);
  out[0] = code;
  out.writeUInt32BE(4 + bodySize, 1);
  return out;
}
