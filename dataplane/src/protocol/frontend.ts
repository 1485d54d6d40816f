/**
 * Frontend (client to server) messages: builders for what the pooler sends to PostgreSQL on its
 * own behalf, readers for the few client messages it must look into (authentication, simple
 * queries). Everything else is forwarded as raw bytes.
 *
 * Readers take buf[start, end) exactly as the Framer reports a message (buf[start] is the type
 * byte) and throw ProtocolViolation on a malformed body.
 */
import {
  FrontendCode,
  ProtocolViolation,
  StartupCode,
  bodyStart,
  cstringSize,
  allocMessage,
  nulIndex,
  readFinalCString,
  writeCString,
} from './codes.js';

/** An untyped 8-byte request packet: length 8 and a request code. */
function request(code: number): Buffer {
  const out = Buffer.allocUnsafe(8);
  out.writeUInt32BE(8, 0);
  out.writeUInt32BE(code, 4);
  return out;
}

const SSL_REQUEST = request(StartupCode.SSL_REQUEST);
const GSSENC_REQUEST = request(StartupCode.GSSENC_REQUEST);

export const SYNC: Buffer = allocMessage(FrontendCode.Sync, 0);
export const FLUSH: Buffer = allocMessage(FrontendCode.Flush, 0);
export const TERMINATE: Buffer = allocMessage(FrontendCode.Terminate, 0);

/** StartupMessage (no type byte): length, protocol version, name/value pairs, final NUL. */
export function startupMessage(
  params: Record<string, string> | Map<string, string>,
  protocol: number = StartupCode.PROTOCOL_3_0,
): Buffer {
  const entries = params instanceof Map ? [...params] : Object.entries(params);
  let size = 9;
  for (const [k, v] of entries) size += cstringSize(k) + cstringSize(v);
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32BE(size, 0);
  out.writeUInt32BE(protocol, 4);
  let p = 8;
  for (const [k, v] of entries) p = writeCString(out, writeCString(out, p, k), v);
  out[p] = 0;
  return out;
}

export function sslRequest(): Buffer {
  return SSL_REQUEST;
}

export function gssencRequest(): Buffer {
  return GSSENC_REQUEST;
}

/** Both values are int32 on the wire; unsigned inputs are accepted and sent as the same 32 bits. */
export function cancelRequest(processId: number, secretKey: number): Buffer {
  const out = Buffer.allocUnsafe(16);
  out.writeUInt32BE(16, 0);
  out.writeUInt32BE(StartupCode.CANCEL_REQUEST, 4);
  out.writeInt32BE(processId | 0, 8);
  out.writeInt32BE(secretKey | 0, 12);
  return out;
}

export function passwordMessage(password: string): Buffer {
  const out = allocMessage(FrontendCode.PasswordMessage, cstringSize(password));
  writeCString(out, 5, password);
  return out;
}

/** Without `data` the initial-response length is -1 (no initial response). */
export function saslInitialResponse(mechanism: string, data?: Buffer): Buffer {
  const n = data === undefined ? 0 : data.length;
  const out = allocMessage(FrontendCode.PasswordMessage, cstringSize(mechanism) + 4 + n);
  const p = writeCString(out, 5, mechanism);
  out.writeInt32BE(data === undefined ? -1 : n, p);
  if (data !== undefined) data.copy(out, p + 4);
  return out;
}

export function saslResponse(data: Buffer): Buffer {
  const out = allocMessage(FrontendCode.PasswordMessage, data.length);
  data.copy(out, 5);
  return out;
}

/** The last Query built: a deferred BEGIN sends the same text transaction after transaction. */
let lastQueryText = '';
let lastQuery: Buffer | null = null;

/** A Query message; the same text may give back the same buffer, so callers never write into it. */
export function query(text: string): Buffer {
  if (lastQuery !== null && text === lastQueryText) return lastQuery;
  const out = allocMessage(FrontendCode.Query, cstringSize(text));
  writeCString(out, 5, text);
  lastQueryText = text;
  lastQuery = out;
  return out;
}

export function sync(): Buffer {
  return SYNC;
}

export function flush(): Buffer {
  return FLUSH;
}

export function terminate(): Buffer {
  return TERMINATE;
}

export function readQueryText(buf: Buffer, start: number, end: number): string {
  return readFinalCString(buf, bodyStart(buf, start, end), end);
}

export function readPasswordMessage(buf: Buffer, start: number, end: number): string {
  return readFinalCString(buf, bodyStart(buf, start, end), end);
}

/** `data` is a view into `buf` (not copied); empty when the client sent length -1. */
export function readSASLInitialResponse(buf: Buffer, start: number, end: number): { mechanism: string; data: Buffer } {
  const p = bodyStart(buf, start, end);
  const nul = nulIndex(buf, p, end);
  const mechanism = buf.toString('utf8', p, nul);
  const q = nul + 1;
  if (end - q < 4) throw new ProtocolViolation('SASLInitialResponse without data length');
  const n = buf.readInt32BE(q);
  if (n === -1 ? end !== q + 4 : n < 0 || end - (q + 4) !== n) {
    throw new ProtocolViolation('SASLInitialResponse data length does not match the message');
  }
  return { mechanism, data: buf.subarray(q + 4, end) };
}

/** The whole body is the SASL data; returned as a view into `buf`. */
export function readSASLResponse(buf: Buffer, start: number, end: number): Buffer {
  return buf.subarray(bodyStart(buf, start, end), end);
}
