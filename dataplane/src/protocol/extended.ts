/**
 * Extended-query messages the pooler rewrites: it reads the statement name of Parse, Bind, Describe and
 * Close, and writes them back under another name. Everything else in those messages is copied as bytes.
 * All ranges are (buf, start, end) as the framer reports them, buf[start] being the type byte. The readers
 * fill an `out` object when given one, so that the hot path reuses its own instead of allocating per message.
 */
import { allocMessage, bodyStart, copyRange, cstringSize, FrontendCode, nulIndex, ProtocolViolation, readName, writeCString, writeUint32At } from './codes.js';

/** Where a Parse's statement name ends and the rest (query, parameter types) begins. */
export interface ParseParts {
  name: string;
  /** Offset of the query text (just after the name's NUL). */
  restStart: number;
}

export function readParse(buf: Buffer, start: number, end: number, out: ParseParts = { name: '', restStart: 0 }): ParseParts {
  const p = bodyStart(buf, start, end);
  const nul = nulIndex(buf, p, end);
  const q = nulIndex(buf, nul + 1, end);
  if (q + 3 > end) throw new ProtocolViolation('Parse message is truncated');
  const n = buf.readInt16BE(q + 1);
  if (n < 0 || q + 3 + 4 * n !== end) throw new ProtocolViolation('Parse parameter types do not match the message length');
  out.name = readName(buf, p, nul);
  out.restStart = nul + 1;
  return out;
}

/** A Parse message naming `name`, with the query text and parameter types copied from `rest`. */
export function buildParse(name: string, rest: Buffer): Buffer {
  const out = allocMessage(FrontendCode.Parse, cstringSize(name) + rest.length);
  const p = writeCString(out, 5, name);
  rest.copy(out, p);
  return out;
}

/** Name of the statement a Bind uses, and where it sits. */
export interface BindParts {
  statement: string;
  statementStart: number;
  /** Offset just after the statement name's NUL. */
  statementEnd: number;
}

export function readBind(buf: Buffer, start: number, end: number, out: BindParts = { statement: '', statementStart: 0, statementEnd: 0 }): BindParts {
  const p = bodyStart(buf, start, end);
  const portalNul = nulIndex(buf, p, end);
  const stmtNul = nulIndex(buf, portalNul + 1, end);
  out.statement = readName(buf, portalNul + 1, stmtNul);
  out.statementStart = portalNul + 1;
  out.statementEnd = stmtNul + 1;
  return out;
}

/** The size of the Bind buf[start, end) with its statement name replaced by `statement` (see rewriteBind). */
export function rewrittenBindSize(start: number, end: number, parts: BindParts, statement: Buffer): number {
  return end - start - (parts.statementEnd - parts.statementStart) + statement.length;
}

/**
 * Writes the Bind buf[start, end) with its statement name replaced by `statement` (a name and its NUL, see
 * cstring) at out[at, at + rewrittenBindSize); returns the position after it.
 */
export function rewriteBind(buf: Buffer, start: number, end: number, parts: BindParts, statement: Buffer, out: Buffer, at: number): number {
  const size = rewrittenBindSize(start, end, parts, statement);
  out[at] = FrontendCode.Bind;
  writeUint32At(out, at + 1, size - 1);
  let p = copyRange(buf, start + 5, parts.statementStart, out, at + 5);
  p = copyRange(statement, 0, statement.length, out, p);
  return copyRange(buf, parts.statementEnd, end, out, p);
}

/** Describe and Close: 'S' (statement) or 'P' (portal), and the name. */
export interface Target {
  kind: number;
  name: string;
}

export function readTarget(buf: Buffer, start: number, end: number, out: Target = { kind: 0, name: '' }): Target {
  const p = bodyStart(buf, start, end);
  if (p >= end) throw new ProtocolViolation('Describe/Close message is truncated');
  const kind = buf[p];
  if (kind !== 0x53 && kind !== 0x50) throw new ProtocolViolation(`invalid Describe/Close target "${String.fromCharCode(kind)}"`);
  const nul = nulIndex(buf, p + 1, end);
  if (nul !== end - 1) throw new ProtocolViolation('unexpected data after the name');
  out.kind = kind;
  out.name = readName(buf, p + 1, nul);
  return out;
}

export const TARGET_STATEMENT = 0x53; // 'S'

function target(code: number, kind: number, name: string): Buffer {
  const out = allocMessage(code, 1 + cstringSize(name));
  out[5] = kind;
  writeCString(out, 6, name);
  return out;
}

export function describeStatement(name: string): Buffer {
  return target(FrontendCode.Describe, TARGET_STATEMENT, name);
}

export function closeStatement(name: string): Buffer {
  return target(FrontendCode.Close, TARGET_STATEMENT, name);
}

/** First byte of the statement name inside a Parse, for a quick named/unnamed test. */
export function parseIsNamed(buf: Buffer, start: number): boolean {
  return buf[start + 5] !== 0;
}

/** Reads message `code` at `p` if it is there and whole; returns its end, or -1. */
function messageAt(buf: Buffer, p: number, end: number, code: number): number {
  if (p + 5 > end || buf[p] !== code) return -1;
  const len = buf.readUInt32BE(p + 1);
  if (len < 4 || p + 1 + len > end) return -1;
  return p + 1 + len;
}

/**
 * If buf[start, end) holds exactly Bind(unnamed portal, no parameters), an optional Describe of that portal,
 * Execute and Sync (how drivers run one parameterless statement), the statement's name and whether the
 * Describe was there; otherwise null.
 */
export function readLoneExecution(buf: Buffer, start: number, end = buf.length): { statement: string; describe: boolean } | null {
  const bindEnd = messageAt(buf, start, end, FrontendCode.Bind);
  if (bindEnd < 0 || buf[start + 5] !== 0) return null;
  const parts = readBind(buf, start, bindEnd);
  const at = parts.statementEnd;
  if (at + 4 > bindEnd) return null;
  const formats = buf.readInt16BE(at);
  const paramsAt = at + 2 + 2 * formats;
  if (formats < 0 || paramsAt + 2 > bindEnd || buf.readInt16BE(paramsAt) !== 0) return null;
  let p = bindEnd;
  let describe = false;
  if (buf[p] === FrontendCode.Describe) {
    const describeEnd = messageAt(buf, p, end, FrontendCode.Describe);
    if (describeEnd < 0 || describeEnd - p !== 7 || buf[p + 5] !== 0x50 /* 'P' */ || buf[p + 6] !== 0) return null;
    describe = true;
    p = describeEnd;
  }
  const execEnd = messageAt(buf, p, end, FrontendCode.Execute);
  if (execEnd < 0 || buf[p + 5] !== 0) return null;
  const syncEnd = messageAt(buf, execEnd, end, FrontendCode.Sync);
  if (syncEnd < 0 || syncEnd !== end) return null;
  return { statement: parts.statement, describe };
}

/** Like readLoneExecution, preceded by the Parse of an unnamed parameterless statement: its text. */
export function readLoneStatement(buf: Buffer, start = 0, end = buf.length): { text: string; describe: boolean } | null {
  const parseEnd = messageAt(buf, start, end, FrontendCode.Parse);
  if (parseEnd < 0) return null;
  const parse = readParse(buf, start, parseEnd);
  if (parse.name !== '' || buf.readInt16BE(parseEnd - 2) !== 0) return null;
  const rest = readLoneExecution(buf, parseEnd, end);
  if (rest === null || rest.statement !== '') return null;
  return { text: buf.toString('utf8', parse.restStart, parseEnd - 3), describe: rest.describe };
}
