/**
 * pg_hba.conf rules: parsing and first-match lookup, with PostgreSQL's semantics for the subset
 * a pooler can honour. Anything PostgreSQL would accept but we cannot evaluate (group membership,
 * included files, host names, samehost/samenet, external auth methods) is rejected at load time
 * rather than silently ignored, so a copied pg_hba.conf never grants more than intended.
 */
import { isIP } from 'node:net';

export type HbaConnectionType = 'local' | 'host' | 'hostssl' | 'hostnossl' | 'hostgssenc' | 'hostnogssenc';
export type HbaMethod = 'trust' | 'reject' | 'md5' | 'scram-sha-256' | 'password';

/** One element of a database or user list. Quoted keywords are plain names. */
export type HbaName = { kind: 'all' } | { kind: 'sameuser' } | { kind: 'replication' } | { kind: 'name'; name: string };

export type HbaAddress = { kind: 'all' } | { kind: 'ip'; family: 4 | 6; bytes: Buffer; mask: Buffer };

export interface HbaRule {
  type: HbaConnectionType;
  databases: HbaName[];
  users: HbaName[];
  /** null for `local` rules. */
  address: HbaAddress | null;
  method: HbaMethod;
  /** name=value fields after the method, kept for the caller. */
  options: Record<string, string>;
  source: string;
  line: number;
}

export interface HbaConnection {
  /** Unix-domain socket connection. */
  local: boolean;
  ssl: boolean;
  database: string;
  user: string;
  /** Client IP (IPv4, IPv6, or IPv4-mapped IPv6); ignored when local. */
  address: string;
}

export class HbaError extends Error {
  override name = 'HbaError';
  constructor(
    readonly source: string,
    readonly line: number,
    readonly reason: string,
  ) {
    super(`${source}:${line}: ${reason}`);
  }
}

const CONNECTION_TYPES: ReadonlySet<string> = new Set(['local', 'host', 'hostssl', 'hostnossl', 'hostgssenc', 'hostnogssenc']);
const METHODS: ReadonlySet<string> = new Set(['trust', 'reject', 'md5', 'scram-sha-256', 'password']);
/** Methods PostgreSQL knows but the pooler cannot perform. */
const UNSUPPORTED_METHODS: ReadonlySet<string> = new Set(['cert', 'gss', 'sspi', 'ident', 'peer', 'ldap', 'pam', 'radius', 'bsd', 'oauth']);

// ---------------------------------------------------------------------------------------------
// Tokenizing
// ---------------------------------------------------------------------------------------------

interface Token {
  text: string;
  quoted: boolean;
}

/** A field is a comma-separated list of tokens ("a, b" is one field, as in PostgreSQL). */
type Field = Token[];

interface LogicalLine {
  line: number;
  fields: Field[];
}

const isSpace = (c: string): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\n' || c === '\f' || c === '\v';

/** Splits the file into records, joining backslash-continued lines and dropping comments. */
function tokenize(text: string, source: string): LogicalLine[] {
  const records: LogicalLine[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const first = i + 1;
    let logical = lines[i]!.replace(/\r$/, '');
    while (logical.endsWith('\\') && i + 1 < lines.length) {
      logical = logical.slice(0, -1) + ' ' + lines[++i]!.replace(/\r$/, '');
    }
    const fields = splitFields(logical, source, first);
    if (fields.length > 0) records.push({ line: first, fields });
  }
  return records;
}

function splitFields(line: string, source: string, lineNo: number): Field[] {
  const fields: Field[] = [];
  let i = 0;
  const n = line.length;
  const skipSpace = (): void => {
    while (i < n && isSpace(line[i]!)) i++;
  };
  for (;;) {
    skipSpace();
    if (i >= n || line[i] === '#') return fields;
    const field: Field = [];
    for (;;) {
      let textOut = '';
      let quoted = false;
      let inQuote = false;
      let comment = false;
      while (i < n) {
        const c = line[i]!;
        if (c === '"') {
          inQuote = !inQuote;
          quoted = true;
        } else if (!inQuote && (isSpace(c) || c === ',')) {
          break;
        } else if (!inQuote && c === '#') {
          comment = true;
          break;
        } else {
          textOut += c;
        }
        i++;
      }
      if (inQuote) throw new HbaError(source, lineNo, 'unterminated quoted string');
      if (textOut === '' && !quoted) throw new HbaError(source, lineNo, 'empty element in a comma-separated list');
      field.push({ text: textOut, quoted });
      if (comment) {
        fields.push(field);
        return fields;
      }
      if (line[i] !== ',') break;
      i++;
      skipSpace();
      if (i >= n || line[i] === '#') throw new HbaError(source, lineNo, 'comma-separated list ends with a comma');
    }
    fields.push(field);
  }
}

// ---------------------------------------------------------------------------------------------
// Field interpretation
// ---------------------------------------------------------------------------------------------

function single(field: Field, what: string, fail: (reason: string) => never): string {
  if (field.length !== 1) fail(`multiple values in ${what}`);
  return field[0]!.text;
}

function parseNames(field: Field, isDatabase: boolean, fail: (reason: string) => never): HbaName[] {
  return field.map((tok): HbaName => {
    const t = tok.text;
    if (!tok.quoted) {
      if (t === 'all') return { kind: 'all' };
      if (isDatabase && t === 'sameuser') return { kind: 'sameuser' };
      if (isDatabase && t === 'replication') return { kind: 'replication' };
      if (isDatabase && (t === 'samerole' || t === 'samegroup')) fail(`"${t}" is not supported`);
      if (t.startsWith('+')) fail(`group membership ("${t}") is not supported`);
      if (t.startsWith('@')) fail(`file inclusion ("${t}") is not supported`);
      if (t.startsWith('/')) fail(`regular expressions ("${t}") are not supported`);
    }
    return { kind: 'name', name: t };
  });
}

/** IPv4 as 4 bytes, IPv6 as 16; an IPv6 zone ("%eth0") is dropped. */
function ipBytes(s: string): Buffer | null {
  const addr = s.includes('%') ? s.slice(0, s.indexOf('%')) : s;
  const family = isIP(addr);
  if (family === 4) return Buffer.from(addr.split('.').map(Number));
  if (family !== 6) return null;
  const words = (part: string): number[] =>
    part === ''
      ? []
      : part.split(':').flatMap((g) => {
          if (!g.includes('.')) return [parseInt(g, 16)];
          const [a, b, c, d] = g.split('.').map(Number);
          return [(a! << 8) | b!, (c! << 8) | d!];
        });
  const gap = addr.indexOf('::');
  const head = words(gap < 0 ? addr : addr.slice(0, gap));
  const tail = gap < 0 ? [] : words(addr.slice(gap + 2));
  const all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  const out = Buffer.alloc(16);
  all.forEach((w, k) => out.writeUInt16BE(w, k * 2));
  return out;
}

function prefixMask(bits: number, length: number): Buffer {
  const mask = Buffer.alloc(length);
  for (let k = 0; k < length; k++) mask[k] = bits >= (k + 1) * 8 ? 0xff : bits <= k * 8 ? 0 : (0xff << (8 - (bits - k * 8))) & 0xff;
  return mask;
}

/** Parses the address field, consuming the following mask field when there is one. */
function parseAddress(fields: Field[], at: number, fail: (reason: string) => never): { address: HbaAddress; next: number } {
  const text = single(fields[at]!, 'the address field', fail);
  if (text === 'all') return { address: { kind: 'all' }, next: at + 1 };
  if (text === 'samehost' || text === 'samenet') fail(`"${text}" is not supported`);
  const slash = text.indexOf('/');
  if (slash >= 0) {
    const ip = text.slice(0, slash);
    const bytes = ipBytes(ip);
    if (bytes === null || ip.includes('%')) fail(`invalid IP address "${ip}"`);
    const bitsText = text.slice(slash + 1);
    const bits = Number(bitsText);
    if (!/^[0-9]{1,3}$/.test(bitsText) || bits > bytes.length * 8) fail(`invalid CIDR mask in address "${text}"`);
    return { address: { kind: 'ip', family: bytes.length === 4 ? 4 : 6, bytes, mask: prefixMask(bits, bytes.length) }, next: at + 1 };
  }
  const bytes = ipBytes(text);
  if (bytes === null) fail(`host names are not supported ("${text}"); use an IP address or CIDR range`);
  const maskField = fields[at + 1];
  if (maskField === undefined) fail(`IP address "${text}" without a mask`);
  const maskText = single(maskField, 'the mask field', fail);
  const mask = ipBytes(maskText);
  if (mask === null) fail(`IP address "${text}" without a mask (invalid mask "${maskText}")`);
  if (mask.length !== bytes.length) fail(`IP address "${text}" and mask "${maskText}" are of different families`);
  return { address: { kind: 'ip', family: bytes.length === 4 ? 4 : 6, bytes, mask }, next: at + 2 };
}

function parseRecord(rec: LogicalLine, source: string): HbaRule {
  const fail: (reason: string) => never = (reason) => {
    throw new HbaError(source, rec.line, reason);
  };
  const { fields } = rec;
  const type = single(fields[0]!, 'the connection type', fail);
  if (!CONNECTION_TYPES.has(type)) fail(`invalid connection type "${type}"`);
  if (fields[1] === undefined) fail('end of line before the database field');
  const databases = parseNames(fields[1]!, true, fail);
  if (fields[2] === undefined) fail('end of line before the user field');
  const users = parseNames(fields[2]!, false, fail);

  let at = 3;
  let address: HbaAddress | null = null;
  if (type !== 'local') {
    if (fields[at] === undefined) fail('end of line before the address field');
    const parsed = parseAddress(fields, at, fail);
    address = parsed.address;
    at = parsed.next;
  }

  if (fields[at] === undefined) fail('end of line before the authentication method');
  const method = single(fields[at]!, 'the authentication method', fail);
  if (UNSUPPORTED_METHODS.has(method)) fail(`authentication method "${method}" is not supported`);
  if (!METHODS.has(method)) fail(`unknown method "${method}"`);

  const options: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const field of fields.slice(at + 1)) {
    const raw = field.map((t) => t.text).join(',');
    const eq = raw.indexOf('=');
    if (eq <= 0) fail(`authentication option "${raw}" is not in name=value form`);
    options[raw.slice(0, eq)] = raw.slice(eq + 1);
  }

  return {
    type: type as HbaConnectionType,
    databases,
    users,
    address,
    method: method as HbaMethod,
    options,
    source,
    line: rec.line,
  };
}

/** Parses pg_hba.conf text; `source` (a file name or "config") prefixes error messages. */
export function parseHba(text: string, source: string): HbaRule[] {
  return tokenize(text, source).map((rec) => parseRecord(rec, source));
}

// ---------------------------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------------------------

const V4_MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

/** A client address as bytes, IPv4-mapped IPv6 unwrapped to IPv4. */
function clientBytes(address: string): Buffer | null {
  const b = ipBytes(address);
  if (b !== null && b.length === 16 && b.subarray(0, 12).equals(V4_MAPPED_PREFIX)) return b.subarray(12);
  return b;
}

function addressMatches(rule: HbaAddress, client: Buffer | null): boolean {
  if (rule.kind === 'all') return true;
  if (client === null) return false;
  // Like PostgreSQL, an IPv4 client is also tested against IPv6 rules in its IPv4-mapped form.
  const c = client.length === rule.bytes.length ? client : client.length === 4 ? Buffer.concat([V4_MAPPED_PREFIX, client]) : null;
  if (c === null) return false;
  for (let k = 0; k < c.length; k++) {
    if ((c[k]! & rule.mask[k]!) !== (rule.bytes[k]! & rule.mask[k]!)) return false;
  }
  return true;
}

function typeMatches(type: HbaConnectionType, c: HbaConnection): boolean {
  switch (type) {
    case 'local':
      return c.local;
    case 'host':
      return !c.local;
    case 'hostssl':
      return !c.local && c.ssl;
    case 'hostnossl':
      return !c.local && !c.ssl;
    case 'hostgssenc':
      // The pooler answers GSSENCRequest with 'N', so no connection is GSS-encrypted...
      return false;
    case 'hostnogssenc':
      // ...and every TCP connection is a non-GSS-encrypted one.
      return !c.local;
  }
}

function databaseMatches(names: HbaName[], c: HbaConnection): boolean {
  return names.some((n) => {
    switch (n.kind) {
      case 'all':
        return true;
      case 'sameuser':
        return c.database === c.user;
      case 'replication':
        // The pooler carries no replication connections.
        return false;
      case 'name':
        return n.name === c.database;
    }
  });
}

function userMatches(names: HbaName[], c: HbaConnection): boolean {
  return names.some((n) => n.kind === 'all' || (n.kind === 'name' && n.name === c.user));
}

/** The first rule that applies to the connection, as PostgreSQL picks it; null means reject. */
export function matchHba(rules: HbaRule[], c: HbaConnection): HbaRule | null {
  const client = c.local ? null : clientBytes(c.address);
  for (const rule of rules) {
    if (!typeMatches(rule.type, c)) continue;
    if (!databaseMatches(rule.databases, c) || !userMatches(rule.users, c)) continue;
    if (rule.address !== null && !addressMatches(rule.address, client)) continue;
    return rule;
  }
  return null;
}
