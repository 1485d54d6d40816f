/**
 * Backend (server to client) messages: builders for the few the pooler synthesizes towards
 * clients, readers for the few fields it must act on in PostgreSQL's replies. Everything else is
 * forwarded as raw bytes.
 *
 * Readers take buf[start, end) exactly as the Framer reports a message (buf[start] is the type
 * byte) and throw ProtocolViolation on a malformed body.
 */
import {
  AuthCode,
  BackendCode,
  ProtocolViolation,
  TxStatus,
  bodyStart,
  cstringSize,
  allocMessage,
  nulIndex,
  readFinalCString,
  writeCString,
} from './codes.js';

export type Severity = 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'DEBUG' | 'INFO' | 'LOG';

export interface ErrorFields {
  severity: Severity;
  /** SQLSTATE, five characters. */
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

function noticeLike(code: number, f: ErrorFields): Buffer {
  const sev = cstringSize(f.severity);
  let size = 1 + sev + 1 + sev + 1 + cstringSize(f.code) + 1 + cstringSize(f.message) + 1;
  if (f.detail !== undefined) size += 1 + cstringSize(f.detail);
  if (f.hint !== undefined) size += 1 + cstringSize(f.hint);
  const out = allocMessage(code, size);
  let p = 5;
  out[p++] = 0x53; // 'S' localized severity
  p = writeCString(out, p, f.severity);
  out[p++] = 0x56; // 'V' non-localized severity: the pooler does not localize
  p = writeCString(out, p, f.severity);
  out[p++] = 0x43; // 'C'
  p = writeCString(out, p, f.code);
  out[p++] = 0x4d; // 'M'
  p = writeCString(out, p, f.message);
  if (f.detail !== undefined) {
    out[p++] = 0x44; // 'D'
    p = writeCString(out, p, f.detail);
  }
  if (f.hint !== undefined) {
    out[p++] = 0x48; // 'H'
    p = writeCString(out, p, f.hint);
  }
  out[p] = 0;
  return out;
}

export function errorResponse(f: ErrorFields): Buffer {
  return noticeLike(BackendCode.ErrorResponse, f);
}

/** An ErrorResponse with every field of `fields` (one-letter codes, in their order): for passing a server's error on with a field changed. */
export function errorResponseOf(fields: Readonly<Record<string, string>>): Buffer {
  let size = 1;
  for (const k in fields) size += 1 + cstringSize(fields[k]);
  const out = allocMessage(BackendCode.ErrorResponse, size);
  let p = 5;
  for (const k in fields) {
    out[p++] = k.charCodeAt(0);
    p = writeCString(out, p, fields[k]);
  }
  out[p] = 0;
  return out;
}

export function noticeResponse(f: ErrorFields): Buffer {
  return noticeLike(BackendCode.NoticeResponse, f);
}

function authHeader(type: number, dataSize: number): Buffer {
  const out = allocMessage(BackendCode.Authentication, 4 + dataSize);
  out.writeInt32BE(type, 5);
  return out;
}

function authWithData(type: number, data: Buffer | string): Buffer {
  const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
  const out = authHeader(type, size);
  if (typeof data === 'string') out.write(data, 9);
  else data.copy(out, 9);
  return out;
}

const AUTH_OK = authHeader(AuthCode.Ok, 0);
const AUTH_CLEARTEXT = authHeader(AuthCode.CleartextPassword, 0);
const EMPTY_QUERY = allocMessage(BackendCode.EmptyQueryResponse, 0);

export function authenticationOk(): Buffer {
  return AUTH_OK;
}

export function authenticationCleartextPassword(): Buffer {
  return AUTH_CLEARTEXT;
}

export function authenticationMD5Password(salt: Buffer): Buffer {
  if (salt.length !== 4) throw new RangeError('MD5 salt must be 4 bytes');
  return authWithData(AuthCode.MD5Password, salt);
}

/** Lists the SASL mechanisms offered, in order of preference. */
export function authenticationSASL(mechanisms: string[]): Buffer {
  let size = 1;
  for (const m of mechanisms) size += cstringSize(m);
  const out = authHeader(AuthCode.SASL, size);
  let p = 9;
  for (const m of mechanisms) p = writeCString(out, p, m);
  out[p] = 0;
  return out;
}

export function authenticationSASLContinue(data: Buffer | string): Buffer {
  return authWithData(AuthCode.SASLContinue, data);
}

export function authenticationSASLFinal(data: Buffer | string): Buffer {
  return authWithData(AuthCode.SASLFinal, data);
}

export function parameterStatus(name: string, value: string): Buffer {
  const out = allocMessage(BackendCode.ParameterStatus, cstringSize(name) + cstringSize(value));
  writeCString(out, writeCString(out, 5, name), value);
  return out;
}

/** Both values are int32 on the wire; unsigned inputs are accepted and stored as the same 32 bits. */
export function backendKeyData(processId: number, secretKey: number): Buffer {
  const out = allocMessage(BackendCode.BackendKeyData, 8);
  out.writeInt32BE(processId | 0, 5);
  out.writeInt32BE(secretKey | 0, 9);
  return out;
}

function ready(status: TxStatus): Buffer {
  const out = allocMessage(BackendCode.ReadyForQuery, 1);
  out[5] = status;
  return out;
}

export const READY_IDLE: Buffer = ready(TxStatus.Idle);
export const READY_IN_TX: Buffer = ready(TxStatus.InTransaction);
export const READY_FAILED: Buffer = ready(TxStatus.Failed);

/** `status` is the char code 'I', 'T' or 'E'; returns a shared constant buffer. */
export function readyForQuery(status: number): Buffer {
  switch (status) {
    case TxStatus.Idle:
      return READY_IDLE;
    case TxStatus.InTransaction:
      return READY_IN_TX;
    case TxStatus.Failed:
      return READY_FAILED;
    default:
      throw new RangeError(`invalid transaction status ${status}`);
  }
}

export function commandComplete(tag: string): Buffer {
  const out = allocMessage(BackendCode.CommandComplete, cstringSize(tag));
  writeCString(out, 5, tag);
  return out;
}

export function emptyQueryResponse(): Buffer {
  return EMPTY_QUERY;
}

/** Newest minor version the pooler supports, and the `_pq_.` options it does not recognize. */
export function negotiateProtocolVersion(newestMinor: number, unrecognized: string[]): Buffer {
  let size = 8;
  for (const o of unrecognized) size += cstringSize(o);
  const out = allocMessage(BackendCode.NegotiateProtocolVersion, size);
  out.writeInt32BE(newestMinor, 5);
  out.writeInt32BE(unrecognized.length, 9);
  let p = 13;
  for (const o of unrecognized) p = writeCString(out, p, o);
  return out;
}

const INT8_OID = 20;
const INT4_OID = 23;

/** Text-format columns not tied to a table (as for SHOW-like pooler commands). */
export function rowDescription(columns: { name: string; typeOid: number }[]): Buffer {
  if (columns.length > 0xffff) throw new RangeError('too many columns');
  let size = 2;
  // Per column after the name: table OID 4, attnum 2, type OID 4, typlen 2, typmod 4, format 2.
  for (const c of columns) size += cstringSize(c.name) + 18;
  const out = allocMessage(BackendCode.RowDescription, size);
  out.writeUInt16BE(columns.length, 5);
  let p = 7;
  for (const c of columns) {
    p = writeCString(out, p, c.name);
    out.writeUInt32BE(0, p);
    out.writeInt16BE(0, p + 4);
    out.writeUInt32BE(c.typeOid, p + 6);
    out.writeInt16BE(c.typeOid === INT8_OID ? 8 : c.typeOid === INT4_OID ? 4 : -1, p + 10);
    out.writeInt32BE(-1, p + 12);
    out.writeInt16BE(0, p + 16);
    p += 18;
  }
  return out;
}

/** Text-format values; null is SQL NULL (length -1). */
export function dataRow(values: (string | null)[]): Buffer {
  if (values.length > 0xffff) throw new RangeError('too many columns');
  let size = 2;
  for (const v of values) size += 4 + (v === null ? 0 : Buffer.byteLength(v));
  const out = allocMessage(BackendCode.DataRow, size);
  out.writeUInt16BE(values.length, 5);
  let p = 7;
  for (const v of values) {
    if (v === null) {
      out.writeInt32BE(-1, p);
      p += 4;
    } else {
      const n = out.write(v, p + 4);
      out.writeInt32BE(n, p);
      p += 4 + n;
    }
  }
  return out;
}

export interface ErrorInfo {
  /** Non-localized severity (field V) when present, else field S. */
  severity: string;
  /** SQLSTATE (field C). */
  code: string;
  /** Primary message (field M). */
  message: string;
  /** Every field, keyed by its one-letter code. */
  fields: Record<string, string>;
}

/** Reads an ErrorResponse or NoticeResponse. Missing S/C/M fields read as ''. */
export function readErrorFields(buf: Buffer, start: number, end: number): ErrorInfo {
  let p = bodyStart(buf, start, end);
  const fields: Record<string, string> = {};
  for (;;) {
    if (p >= end) throw new ProtocolViolation('error fields are not terminated');
    const code = buf[p++];
    if (code === 0) break;
    const nul = nulIndex(buf, p, end);
    fields[String.fromCharCode(code)] = buf.toString('utf8', p, nul);
    p = nul + 1;
  }
  if (p !== end) throw new ProtocolViolation('unexpected data after error fields');
  return {
    severity: fields.V ?? fields.S ?? '',
    code: fields.C ?? '',
    message: fields.M ?? '',
    fields,
  };
}

export function readParameterStatus(buf: Buffer, start: number, end: number): [string, string] {
  const p = bodyStart(buf, start, end);
  const nul = nulIndex(buf, p, end);
  return [buf.toString('utf8', p, nul), readFinalCString(buf, nul + 1, end)];
}

/** Protocol 3.0 keys only (int32); 3.2's longer keys are rejected as malformed. */
export function readBackendKeyData(buf: Buffer, start: number, end: number): { processId: number; secretKey: number } {
  const p = bodyStart(buf, start, end);
  if (end - p !== 8) throw new ProtocolViolation('BackendKeyData must carry two int32');
  return { processId: buf.readInt32BE(p), secretKey: buf.readInt32BE(p + 4) };
}

/** `data` is a view of the bytes after the subtype (salt, mechanism list, SASL data); not copied. */
export function readAuthentication(buf: Buffer, start: number, end: number): { type: number; data: Buffer } {
  const p = bodyStart(buf, start, end);
  if (end - p < 4) throw new ProtocolViolation('Authentication message without subtype');
  return { type: buf.readInt32BE(p), data: buf.subarray(p + 4, end) };
}

/** Returns the transaction status char code: 'I', 'T' or 'E'. */
export function readReadyForQueryStatus(buf: Buffer, start: number, end: number): number {
  const p = bodyStart(buf, start, end);
  if (end - p !== 1) throw new ProtocolViolation('ReadyForQuery must carry one status byte');
  const s = buf[p];
  if (s !== TxStatus.Idle && s !== TxStatus.InTransaction && s !== TxStatus.Failed) {
    throw new ProtocolViolation(`invalid transaction status ${s}`);
  }
  return s;
}

export function readCommandTag(buf: Buffer, start: number, end: number): string {
  return readFinalCString(buf, bodyStart(buf, start, end), end);
}
