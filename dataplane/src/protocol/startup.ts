/**
 * Parses the first packet(s) a client sends: they carry no type byte, only an int32 length and an
 * int32 code that tells a StartupMessage (protocol version) from SSLRequest, GSSENCRequest and
 * CancelRequest. Malformed packets come back as `invalid` with a reason for the FATAL message,
 * never as an exception, since the caller must answer every one of them.
 */
import { StartupCode, findNul } from './codes.js';

export type StartupPacket =
  | { kind: 'startup'; major: number; minor: number; params: Map<string, string> }
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; processId: number; secretKey: number }
  | { kind: 'invalid'; reason: string };

function invalid(reason: string): StartupPacket {
  return { kind: 'invalid', reason };
}

/**
 * buf[start, end) is one packet as the Framer reports it in untyped mode (starting with its
 * length). For a major version other than 3 the parameters are not parsed (their layout is not
 * known) and `params` is empty; the caller rejects such versions.
 */
export function parseStartupPacket(buf: Buffer, start: number, end: number): StartupPacket {
  const size = end - start;
  if (start < 0 || end > buf.length) return invalid('startup packet range is outside the buffer');
  if (size < 8) return invalid('startup packet is shorter than 8 bytes');
  const len = buf.readUInt32BE(start);
  if (len !== size) return invalid('startup packet length does not match its size');
  const code = buf.readUInt32BE(start + 4);
  switch (code) {
    case StartupCode.SSL_REQUEST:
      return len === 8 ? { kind: 'ssl' } : invalid('SSLRequest must be 8 bytes');
    case StartupCode.GSSENC_REQUEST:
      return len === 8 ? { kind: 'gssenc' } : invalid('GSSENCRequest must be 8 bytes');
    case StartupCode.CANCEL_REQUEST:
      if (len !== 16) return invalid('CancelRequest must be 16 bytes');
      return { kind: 'cancel', processId: buf.readInt32BE(start + 8), secretKey: buf.readInt32BE(start + 12) };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  const params = new Map<string, string>();
  if (major !== 3) return { kind: 'startup', major, minor, params };

  let p = start + 8;
  for (;;) {
    if (p >= end) return invalid('startup packet has no terminator');
    if (buf[p] === 0) break;
    const nameEnd = findNul(buf, p, end);
    if (nameEnd < 0) return invalid('startup parameter name is not terminated');
    const name = buf.toString('utf8', p, nameEnd);
    const valueStart = nameEnd + 1;
    if (valueStart >= end) return invalid(`startup parameter "${name}" has no value`);
    const valueEnd = findNul(buf, valueStart, end);
    if (valueEnd < 0) return invalid(`startup parameter "${name}" has no value`);
    if (params.has(name)) return invalid(`duplicate startup parameter "${name}"`);
    params.set(name, buf.toString('utf8', valueStart, valueEnd));
    p = valueEnd + 1;
  }
  if (p !== end - 1) return invalid('startup packet has data after its terminator');
  if (!params.get('user')) return invalid('no user name specified in startup packet');
  return { kind: 'startup', major, minor, params };
}
