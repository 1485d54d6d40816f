import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolViolation } from './codes.js';
import {
  FLUSH,
  SYNC,
  TERMINATE,
  cancelRequest,
  flush,
  gssencRequest,
  passwordMessage,
  query,
  readPasswordMessage,
  readQueryText,
  readSASLInitialResponse,
  readSASLResponse,
  saslInitialResponse,
  saslResponse,
  sslRequest,
  startupMessage,
  sync,
  terminate,
} from './frontend.js';

function msg(code: string, bodyHex: string): Buffer {
  const body = Buffer.from(bodyHex.replace(/\s+/g, ''), 'hex');
  const out = Buffer.alloc(5 + body.length);
  out[0] = code.charCodeAt(0);
  out.writeUInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}
const hex = (s: string): string => Buffer.from(s).toString('hex');

/** Junk before, NULs after: a reader looking past `end` would find a terminator and wrongly succeed. */
function embed(m: Buffer): [Buffer, number, number] {
  const buf = Buffer.concat([Buffer.from([0x11, 0x22]), m, Buffer.alloc(8)]);
  return [buf, 2, 2 + m.length];
}

test('startupMessage from a record or a map, exact bytes', () => {
  const body = hex('user\0alice\0database\0app\0') + '00';
  const want = Buffer.from('00000000 00030000'.replace(/\s+/g, '') + body, 'hex');
  want.writeUInt32BE(want.length, 0);
  assert.ok(startupMessage({ user: 'alice', database: 'app' }).equals(want));
  assert.ok(
    startupMessage(
      new Map([
        ['user', 'alice'],
        ['database', 'app'],
      ]),
    ).equals(want),
  );
  const v32 = startupMessage({ user: 'b' }, 196610);
  assert.equal(v32.toString('hex'), '00000010' + '00030002' + hex('user\0b\0') + '00');
  assert.equal(startupMessage({}).toString('hex'), '00000009' + '00030000' + '00');
  assert.throws(() => startupMessage({ user: 'a\0b' }), RangeError);
});

test('request packets, exact bytes', () => {
  assert.equal(sslRequest().toString('hex'), '00000008' + '04d2162f');
  assert.equal(gssencRequest().toString('hex'), '00000008' + '04d21630');
  assert.equal(cancelRequest(42, -1).toString('hex'), '00000010' + '04d2162e' + '0000002a' + 'ffffffff');
  assert.equal(cancelRequest(42, 0xffffffff).toString('hex'), '00000010' + '04d2162e' + '0000002a' + 'ffffffff');
});

test('Sync, Flush, Terminate constants', () => {
  assert.ok(SYNC.equals(msg('S', '')));
  assert.ok(FLUSH.equals(msg('H', '')));
  assert.ok(TERMINATE.equals(msg('X', '')));
  assert.equal(sync(), SYNC);
  assert.equal(flush(), FLUSH);
  assert.equal(terminate(), TERMINATE);
});

test('query round trip and malformed texts', () => {
  const q = query('SELECT \u00e9');
  assert.ok(q.equals(msg('Q', hex('SELECT \u00e9\0'))));
  assert.equal(readQueryText(...embed(q)), 'SELECT \u00e9');
  assert.equal(readQueryText(...embed(query(''))), '');
  assert.throws(() => readQueryText(...embed(msg('Q', hex('SELECT 1')))), ProtocolViolation);
  assert.throws(() => readQueryText(...embed(msg('Q', hex('SELECT\0 1\0')))), ProtocolViolation);
  assert.throws(() => readQueryText(...embed(msg('Q', ''))), ProtocolViolation);
  assert.throws(() => query('SELECT \0'), RangeError);
});

test('passwordMessage round trip and malformed bodies', () => {
  const m = passwordMessage('s3cr\u00eat');
  assert.ok(m.equals(msg('p', hex('s3cr\u00eat\0'))));
  assert.equal(readPasswordMessage(...embed(m)), 's3cr\u00eat');
  assert.throws(() => readPasswordMessage(...embed(msg('p', hex('secret')))), ProtocolViolation);
  assert.throws(() => readPasswordMessage(...embed(msg('p', hex('a\0b\0')))), ProtocolViolation);
});

test('saslInitialResponse with and without data, exact bytes and round trip', () => {
  const data = Buffer.from('n,,n=,r=rOprNGfwEbeRWgbNEkqO');
  const m = saslInitialResponse('SCRAM-SHA-256', data);
  assert.ok(m.equals(msg('p', hex('SCRAM-SHA-256\0') + '0000001c' + data.toString('hex'))));
  const [buf, start, end] = embed(m);
  const r = readSASLInitialResponse(buf, start, end);
  assert.equal(r.mechanism, 'SCRAM-SHA-256');
  assert.ok(r.data.equals(data));
  // A view, not a copy: same memory, right where the data sits in the message.
  assert.equal(r.data.buffer, buf.buffer);
  assert.equal(r.data.byteOffset, buf.byteOffset + start + 5 + 14 + 4);

  const none = saslInitialResponse('SCRAM-SHA-256');
  assert.ok(none.equals(msg('p', hex('SCRAM-SHA-256\0') + 'ffffffff')));
  const rn = readSASLInitialResponse(...embed(none));
  assert.equal(rn.mechanism, 'SCRAM-SHA-256');
  assert.equal(rn.data.length, 0);

  const empty = readSASLInitialResponse(...embed(saslInitialResponse('X', Buffer.alloc(0))));
  assert.equal(empty.data.length, 0);
});

test('readSASLInitialResponse rejects malformed bodies', () => {
  const mech = hex('SCRAM-SHA-256\0');
  const bad = [
    hex('SCRAM-SHA-256'), // mechanism not terminated
    mech, // no data length
    mech + '0000', // truncated data length
    mech + '00000005' + 'aabb', // data length past the end
    mech + '00000001' + 'aabb', // data shorter than the message
    mech + 'fffffffe', // negative length other than -1
    mech + 'ffffffff' + 'aa', // -1 followed by data
  ];
  for (const body of bad) {
    assert.throws(() => readSASLInitialResponse(...embed(msg('p', body))), ProtocolViolation, body);
  }
});

test('saslResponse round trip, data returned as a view', () => {
  const data = Buffer.from('c=biws,r=abc,p=xyz');
  const m = saslResponse(data);
  assert.ok(m.equals(msg('p', data.toString('hex'))));
  const [buf, start, end] = embed(m);
  const r = readSASLResponse(buf, start, end);
  assert.ok(r.equals(data));
  assert.equal(r.buffer, buf.buffer);
  assert.equal(r.byteOffset, buf.byteOffset + start + 5);
  assert.equal(readSASLResponse(...embed(msg('p', ''))).length, 0);
  assert.throws(() => readSASLResponse(buf, start, end - 1), ProtocolViolation);
});

test('query builds each text right when texts alternate and repeat', () => {
  const expect = (text: string): Buffer => {
    const body = Buffer.from(`${text}\0`);
    const out = Buffer.alloc(5 + body.length);
    out[0] = 0x51;
    out.writeUInt32BE(4 + body.length, 1);
    body.copy(out, 5);
    return out;
  };
  for (const text of ['BEGIN', 'BEGIN', 'START TRANSACTION', 'BEGIN', '', 'begin isolation level serializable', 'BEGIN']) {
    assert.deepEqual(query(text), expect(text));
  }
});
