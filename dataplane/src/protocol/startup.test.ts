import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cancelRequest, gssencRequest, sslRequest, startupMessage } from './frontend.js';
import { parseStartupPacket, type StartupPacket } from './startup.js';

/** Untyped packet: length field, then the rest given as hex. */
function packet(restHex: string): Buffer {
  const rest = Buffer.from(restHex.replace(/\s+/g, ''), 'hex');
  const out = Buffer.alloc(4 + rest.length);
  out.writeUInt32BE(out.length, 0);
  rest.copy(out, 4);
  return out;
}
const hex = (s: string): string => Buffer.from(s).toString('hex');
const V30 = '00030000';

/** Parses the packet placed between other bytes, the trailing ones NULs that must not be read. */
function parse(p: Buffer): StartupPacket {
  const buf = Buffer.concat([Buffer.from([0x01, 0x02, 0x03]), p, Buffer.alloc(8)]);
  return parseStartupPacket(buf, 3, 3 + p.length);
}

function reason(p: StartupPacket): string {
  assert.equal(p.kind, 'invalid');
  return p.kind === 'invalid' ? p.reason : '';
}

test('StartupMessage 3.0 round trip', () => {
  const params = { user: 'alice', database: 'app', options: '-c search_path=x', application_name: '\u00e9t\u00e9' };
  assert.deepEqual(parse(startupMessage(params)), {
    kind: 'startup',
    major: 3,
    minor: 0,
    params: new Map(Object.entries(params)),
  });
});

test('StartupMessage 3.2 keeps _pq_ options for the caller', () => {
  assert.deepEqual(parse(startupMessage({ user: 'u', '_pq_.x': '1' }, 196610)), {
    kind: 'startup',
    major: 3,
    minor: 2,
    params: new Map([
      ['user', 'u'],
      ['_pq_.x', '1'],
    ]),
  });
});

test('other major versions are returned unparsed, for the caller to reject', () => {
  assert.deepEqual(parse(packet('00020000' + hex('garbage'))), {
    kind: 'startup',
    major: 2,
    minor: 0,
    params: new Map(),
  });
  assert.deepEqual(parse(packet('04d21631')), { kind: 'startup', major: 1234, minor: 5681, params: new Map() });
});

test('SSLRequest, GSSENCRequest, CancelRequest', () => {
  assert.deepEqual(parse(sslRequest()), { kind: 'ssl' });
  assert.deepEqual(parse(gssencRequest()), { kind: 'gssenc' });
  assert.deepEqual(parse(cancelRequest(31337, -2)), { kind: 'cancel', processId: 31337, secretKey: -2 });
  assert.deepEqual(parse(cancelRequest(7, 0xfffffffe)), { kind: 'cancel', processId: 7, secretKey: -2 });
});

test('request packets of the wrong size are invalid', () => {
  assert.match(reason(parse(packet('04d2162f 00000000'))), /SSLRequest/);
  assert.match(reason(parse(packet('04d21630 00000000'))), /GSSENCRequest/);
  assert.match(reason(parse(packet('04d2162e 00000001'))), /CancelRequest/);
  assert.match(reason(parse(packet('04d2162e 00000001 00000002 00000003'))), /CancelRequest/);
});

test('too short, or length field not matching the range', () => {
  assert.match(reason(parse(packet(''))), /shorter than 8/);
  assert.match(reason(parse(packet('000300'))), /shorter than 8/);
  const ok = startupMessage({ user: 'u' });
  const buf = Buffer.concat([ok, Buffer.alloc(4)]);
  assert.match(reason(parseStartupPacket(buf, 0, ok.length + 1)), /length/);
  assert.match(reason(parseStartupPacket(buf, 0, ok.length - 1)), /length/);
  assert.match(reason(parseStartupPacket(ok, 0, ok.length + 4)), /outside the buffer/);
  assert.equal(parseStartupPacket(buf, 0, ok.length).kind, 'startup');
});

test('malformed parameter lists are invalid', () => {
  const cases: [string, RegExp][] = [
    [hex('user\0alice\0'), /no terminator/],
    [hex('user\0alice\0database\0'), /"database" has no value/],
    [hex('user\0alice\0database\0app'), /"database" has no value/],
    [hex('user\0alice\0datab'), /name is not terminated/],
    [hex('user\0alice\0\0x'), /after its terminator/],
    [hex('user\0alice\0user\0bob\0\0'), /duplicate startup parameter "user"/],
    [hex('database\0app\0\0'), /no user name/],
    [hex('user\0\0\0'), /no user name/],
    ['', /no terminator/],
  ];
  for (const [body, re] of cases) assert.match(reason(parse(packet(V30 + body))), re, body);
});

test('an empty parameter list is only the terminator, and lacks a user', () => {
  assert.match(reason(parse(packet(V30 + '00'))), /no user name/);
});
