import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthCode, BACKEND_STREAMABLE, FRONTEND_STREAMABLE, ProtocolViolation } from './codes.js';
import {
  READY_FAILED,
  READY_IDLE,
  READY_IN_TX,
  authenticationCleartextPassword,
  authenticationMD5Password,
  authenticationOk,
  authenticationSASL,
  authenticationSASLContinue,
  authenticationSASLFinal,
  backendKeyData,
  commandComplete,
  dataRow,
  emptyQueryResponse,
  errorResponse,
  errorResponseOf,
  negotiateProtocolVersion,
  noticeResponse,
  parameterStatus,
  readAuthentication,
  readBackendKeyData,
  readCommandTag,
  readErrorFields,
  readParameterStatus,
  readReadyForQueryStatus,
  readyForQuery,
  rowDescription,
} from './backend.js';

/** Type byte, correct length field, then the body given as hex. */
function msg(code: string, bodyHex: string): Buffer {
  const body = Buffer.from(bodyHex.replace(/\s+/g, ''), 'hex');
  const out = Buffer.alloc(5 + body.length);
  out[0] = code.charCodeAt(0);
  out.writeUInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}
const hex = (s: string): string => Buffer.from(s).toString('hex');

/**
 * Places a message between junk bytes, the trailing ones NULs, so a reader that looks past `end`
 * would find a terminator there and wrongly succeed.
 */
function embed(m: Buffer): [Buffer, number, number] {
  const buf = Buffer.concat([Buffer.from([0xaa, 0xbb, 0xcc]), m, Buffer.alloc(8)]);
  return [buf, 3, 3 + m.length];
}

test('streamable type sets hold exactly DataRow/CopyData and CopyData', () => {
  const set = (u: Uint8Array): number[] => [...u.keys()].filter((i) => u[i] === 1);
  assert.deepEqual(set(BACKEND_STREAMABLE), [0x44, 0x64]);
  assert.deepEqual(set(FRONTEND_STREAMABLE), [0x64]);
});

test('errorResponse writes S, V, C, M, D, H and the terminator', () => {
  const got = errorResponse({
    severity: 'FATAL',
    code: '28P01',
    message: 'password authentication failed for user "bob"',
    detail: 'd',
    hint: 'h',
  });
  const want = msg(
    'E',
    hex('SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user "bob"\0Dd\0Hh\0') + '00',
  );
  assert.ok(got.equals(want), got.toString('hex'));
});

test('noticeResponse without detail or hint', () => {
  const got = noticeResponse({ severity: 'WARNING', code: '01000', message: 'caf\u00e9' });
  assert.ok(got.equals(msg('N', hex('SWARNING\0VWARNING\0C01000\0Mcaf\u00e9\0') + '00')));
});

test('errorResponse round trip through readErrorFields', () => {
  const m = errorResponse({ severity: 'ERROR', code: '42601', message: 'syntax error', hint: 'look at \u00e7' });
  const r = readErrorFields(...embed(m));
  assert.deepEqual(r, {
    severity: 'ERROR',
    code: '42601',
    message: 'syntax error',
    fields: { S: 'ERROR', V: 'ERROR', C: '42601', M: 'syntax error', H: 'look at \u00e7' },
  });
});

test('readErrorFields prefers the non-localized severity and tolerates missing fields', () => {
  const r = readErrorFields(...embed(msg('E', hex('SFEHLER\0VERROR\0P12\0') + '00')));
  assert.equal(r.severity, 'ERROR');
  assert.equal(r.code, '');
  assert.equal(r.message, '');
  assert.deepEqual(r.fields, { S: 'FEHLER', V: 'ERROR', P: '12' });
  assert.deepEqual(readErrorFields(...embed(msg('E', '00'))).fields, {});
});

test('readErrorFields rejects malformed bodies', () => {
  const bad = [
    msg('E', hex('SERROR\0CXX000\0')), // no final terminator
    msg('E', hex('SERROR\0Mno nul')), // field string not terminated
    msg('E', hex('SERROR\0') + '00' + '41'), // data after the terminator
    msg('E', ''), // empty body
  ];
  for (const m of bad) assert.throws(() => readErrorFields(...embed(m)), ProtocolViolation, m.toString('hex'));
});

test('readers reject a range that does not match the length field', () => {
  const m = commandComplete('SELECT 1');
  const [buf, start, end] = embed(m);
  assert.throws(() => readCommandTag(buf, start, end - 1), ProtocolViolation);
  assert.throws(() => readCommandTag(buf, start, end + 1), ProtocolViolation);
  assert.throws(() => readCommandTag(buf, start, start + 4), ProtocolViolation);
  assert.throws(() => readCommandTag(m, 0, m.length + 1), ProtocolViolation);
  assert.equal(readCommandTag(buf, start, end), 'SELECT 1');
});

test('authentication builders, exact bytes', () => {
  assert.ok(authenticationOk().equals(msg('R', '00000000')));
  assert.ok(authenticationCleartextPassword().equals(msg('R', '00000003')));
  assert.ok(authenticationMD5Password(Buffer.from([1, 2, 3, 4])).equals(msg('R', '00000005 01020304')));
  assert.throws(() => authenticationMD5Password(Buffer.from([1, 2, 3])), RangeError);
  assert.ok(
    authenticationSASL(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']).equals(
      msg('R', '0000000a' + hex('SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0') + '00'),
    ),
  );
  assert.ok(authenticationSASLContinue('r=abc,s=xyz,i=4096').equals(msg('R', '0000000b' + hex('r=abc,s=xyz,i=4096'))));
  assert.ok(authenticationSASLContinue(Buffer.from([0, 0xff])).equals(msg('R', '0000000b 00ff')));
  assert.ok(authenticationSASLFinal('v=\u00e9').equals(msg('R', '0000000c' + hex('v=\u00e9'))));
  assert.ok(authenticationSASLFinal(Buffer.alloc(0)).equals(msg('R', '0000000c')));
});

test('readAuthentication returns the subtype and a view of the data', () => {
  const [buf, start, end] = embed(authenticationMD5Password(Buffer.from([9, 8, 7, 6])));
  const r = readAuthentication(buf, start, end);
  assert.equal(r.type, AuthCode.MD5Password);
  assert.deepEqual([...r.data], [9, 8, 7, 6]);
  // A view, not a copy: same memory, right after the subtype.
  assert.equal(r.data.buffer, buf.buffer);
  assert.equal(r.data.byteOffset, buf.byteOffset + start + 9);

  const ok = readAuthentication(...embed(authenticationOk()));
  assert.equal(ok.type, AuthCode.Ok);
  assert.equal(ok.data.length, 0);

  const sasl = readAuthentication(...embed(authenticationSASL(['SCRAM-SHA-256'])));
  assert.equal(sasl.type, AuthCode.SASL);
  assert.equal(sasl.data.toString('latin1'), 'SCRAM-SHA-256\0\0');

  assert.throws(() => readAuthentication(...embed(msg('R', '000000'))), ProtocolViolation);
});

test('parameterStatus round trip and malformed bodies', () => {
  const m = parameterStatus('client_encoding', 'UTF8');
  assert.ok(m.equals(msg('S', hex('client_encoding\0UTF8\0'))));
  assert.deepEqual(readParameterStatus(...embed(m)), ['client_encoding', 'UTF8']);
  assert.deepEqual(readParameterStatus(...embed(parameterStatus('application_name', ''))), ['application_name', '']);
  for (const body of ['name', 'name\0value', 'name\0value\0x', 'name\0va\0lue\0']) {
    assert.throws(() => readParameterStatus(...embed(msg('S', hex(body)))), ProtocolViolation, body);
  }
  assert.throws(() => parameterStatus('a\0b', 'c'), RangeError);
});

test('backendKeyData: int32 both ways, unsigned input wraps to the same bits', () => {
  assert.ok(backendKeyData(1234, -5).equals(msg('K', '000004d2 fffffffb')));
  assert.ok(backendKeyData(1234, 0xfffffffb).equals(msg('K', '000004d2 fffffffb')));
  assert.deepEqual(readBackendKeyData(...embed(backendKeyData(0x7fffffff, -1))), {
    processId: 0x7fffffff,
    secretKey: -1,
  });
  assert.throws(() => readBackendKeyData(...embed(msg('K', '00000001'))), ProtocolViolation);
  assert.throws(() => readBackendKeyData(...embed(msg('K', '00000001 00000002 00000003'))), ProtocolViolation);
});

test('readyForQuery constants and reader', () => {
  assert.ok(READY_IDLE.equals(msg('Z', '49')));
  assert.ok(READY_IN_TX.equals(msg('Z', '54')));
  assert.ok(READY_FAILED.equals(msg('Z', '45')));
  assert.equal(readyForQuery(0x49), READY_IDLE);
  assert.equal(readyForQuery(0x54), READY_IN_TX);
  assert.equal(readyForQuery(0x45), READY_FAILED);
  assert.throws(() => readyForQuery(0x58), RangeError);
  assert.equal(readReadyForQueryStatus(...embed(READY_IDLE)), 0x49);
  assert.equal(readReadyForQueryStatus(...embed(READY_IN_TX)), 0x54);
  assert.equal(readReadyForQueryStatus(...embed(READY_FAILED)), 0x45);
  assert.throws(() => readReadyForQueryStatus(...embed(msg('Z', '58'))), ProtocolViolation);
  assert.throws(() => readReadyForQueryStatus(...embed(msg('Z', ''))), ProtocolViolation);
  assert.throws(() => readReadyForQueryStatus(...embed(msg('Z', '4949'))), ProtocolViolation);
});

test('commandComplete round trip and malformed tags', () => {
  const m = commandComplete('INSERT 0 5');
  assert.ok(m.equals(msg('C', hex('INSERT 0 5\0'))));
  assert.equal(readCommandTag(...embed(m)), 'INSERT 0 5');
  assert.throws(() => readCommandTag(...embed(msg('C', hex('SELECT 1')))), ProtocolViolation);
  assert.throws(() => readCommandTag(...embed(msg('C', hex('SELECT\0 1\0')))), ProtocolViolation);
});

test('emptyQueryResponse', () => {
  assert.ok(emptyQueryResponse().equals(msg('I', '')));
});

test('negotiateProtocolVersion', () => {
  assert.ok(
    negotiateProtocolVersion(0, ['_pq_.foo', '_pq_.b']).equals(
      msg('v', '00000000 00000002' + hex('_pq_.foo\0_pq_.b\0')),
    ),
  );
  assert.ok(negotiateProtocolVersion(2, []).equals(msg('v', '00000002 00000000')));
});

test('rowDescription: text columns, typlen from the type, typmod -1', () => {
  const got = rowDescription([
    { name: 'id', typeOid: 20 },
    { name: 'n', typeOid: 23 },
    { name: 'nom', typeOid: 25 },
  ]);
  const col = (name: string, oid: string, len: string): string =>
    hex(name + '\0') + '00000000' + '0000' + oid + len + 'ffffffff' + '0000';
  const want = msg(
    'T',
    '0003' + col('id', '00000014', '0008') + col('n', '00000017', '0004') + col('nom', '00000019', 'ffff'),
  );
  assert.ok(got.equals(want), got.toString('hex'));
  assert.ok(rowDescription([]).equals(msg('T', '0000')));
});

test('dataRow: lengths in bytes, NULL as -1', () => {
  const got = dataRow(['1', null, '\u00e9', '']);
  assert.ok(got.equals(msg('D', '0004 00000001 31 ffffffff 00000002 c3a9 00000000')), got.toString('hex'));
  assert.ok(dataRow([]).equals(msg('D', '0000')));
});

test('errorResponseOf writes every field back in order; readErrorFields reads the same', () => {
  const fields = { S: 'ERROR', V: 'ERROR', C: '08P01', M: 'bind message supplies 1 parameters, but prepared statement "s" requires 0', F: 'postgres.c', L: '1707', R: 'exec_bind_message' };
  const m = errorResponseOf(fields);
  assert.equal(m[0], 0x45);
  assert.deepEqual(readErrorFields(m, 0, m.length).fields, fields);
});
