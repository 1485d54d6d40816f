import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allocMessage, cstring, FrontendCode } from './codes.js';
import { buildParse, closeStatement, describeStatement, readBind, readLoneExecution, readLoneStatement, readParse, readTarget, rewriteBind, rewrittenBindSize, type BindParts } from './extended.js';
import { SYNC } from './frontend.js';

function msg(code: number, body: Buffer): Buffer {
  const out = allocMessage(code, body.length);
  body.copy(out, 5);
  return out;
}
const cstr = (s: string): Buffer => Buffer.from(`${s}\0`);
const i16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const i32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

function parse(name: string, sql: string, oids: number[] = []): Buffer {
  return msg(FrontendCode.Parse, Buffer.concat([cstr(name), cstr(sql), i16(oids.length), ...oids.map(i32)]));
}
function bind(portal: string, stmt: string, params: (string | null)[] = []): Buffer {
  const values = params.map((p) => (p === null ? i32(-1) : Buffer.concat([i32(Buffer.byteLength(p)), Buffer.from(p)])));
  return msg(FrontendCode.Bind, Buffer.concat([cstr(portal), cstr(stmt), i16(0), i16(params.length), ...values, i16(1), i16(1)]));
}
const execute = msg(FrontendCode.Execute, Buffer.concat([cstr(''), i32(0)]));
const describePortal = msg(FrontendCode.Describe, Buffer.concat([Buffer.from('P'), cstr('')]));

test('Parse: name and rest are read, and rebuilt under another name byte for byte', () => {
  const m = parse('s1', 'select $1::int', [23]);
  const p = readParse(m, 0, m.length);
  assert.equal(p.name, 's1');
  assert.deepEqual(buildParse('s1', m.subarray(p.restStart)), m);
  const renamed = buildParse('DOORMAN_7', m.subarray(p.restStart));
  assert.deepEqual(renamed, parse('DOORMAN_7', 'select $1::int', [23]));
  assert.throws(() => readParse(m, 0, m.length - 1));
});

/** rewriteBind into a buffer with other bytes around the message, which must stay as they were. */
function rewritten(buf: Buffer, start: number, end: number, parts: BindParts, statement: Buffer): Buffer {
  const size = rewrittenBindSize(start, end, parts, statement);
  const out = Buffer.alloc(size + 6, 0xaa);
  assert.equal(rewriteBind(buf, start, end, parts, statement, out, 3), 3 + size);
  assert.deepEqual([...out.subarray(0, 3), ...out.subarray(3 + size)], [0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa]);
  return out.subarray(3, 3 + size);
}

test('Bind: the statement name is replaced and everything else kept', () => {
  const m = bind('portal', 'mine', ['42', null]);
  const parts = readBind(m, 0, m.length);
  assert.equal(parts.statement, 'mine');
  assert.deepEqual(rewritten(m, 0, m.length, parts, cstring('DOORMAN_12')), bind('portal', 'DOORMAN_12', ['42', null]));
  // Inside a larger buffer, at an offset.
  const big = Buffer.concat([SYNC, m, SYNC]);
  const at = readBind(big, SYNC.length, SYNC.length + m.length);
  assert.deepEqual(rewritten(big, SYNC.length, SYNC.length + m.length, at, cstring('x')), bind('portal', 'x', ['42', null]));
  // Parameters and a portal name long enough to be copied as views rather than byte by byte.
  const long = bind('p'.repeat(100), '', ['y'.repeat(300), '7']);
  const longParts = readBind(long, 0, long.length, { statement: 'stale', statementStart: -1, statementEnd: -1 });
  assert.equal(longParts.statement, '');
  assert.deepEqual(rewritten(long, 0, long.length, longParts, cstring('DOORMAN_3')), bind('p'.repeat(100), 'DOORMAN_3', ['y'.repeat(300), '7']));
});

test('Describe/Close targets', () => {
  const d = describeStatement('DOORMAN_1');
  assert.deepEqual(readTarget(d, 0, d.length), { kind: 0x53, name: 'DOORMAN_1' });
  const c = closeStatement('');
  assert.equal(c[0], FrontendCode.Close);
  assert.deepEqual(readTarget(c, 0, c.length), { kind: 0x53, name: '' });
  const bad = msg(FrontendCode.Describe, Buffer.concat([Buffer.from('X'), cstr('a')]));
  assert.throws(() => readTarget(bad, 0, bad.length), /invalid Describe\/Close target/);
});

test('a lone parameterless statement is recognised; anything more is not', () => {
  const lone = Buffer.concat([parse('', 'BEGIN'), bind('', ''), describePortal, execute, SYNC]);
  assert.deepEqual(readLoneStatement(lone), { text: 'BEGIN', describe: true });
  assert.deepEqual(readLoneStatement(Buffer.concat([parse('', 'COMMIT'), bind('', ''), execute, SYNC])), { text: 'COMMIT', describe: false });
  assert.equal(readLoneStatement(Buffer.concat([parse('s', 'BEGIN'), bind('', 's'), execute, SYNC])), null);
  assert.equal(readLoneStatement(Buffer.concat([parse('', 'select $1', [23]), bind('', '', ['1']), execute, SYNC])), null);
  assert.equal(readLoneStatement(Buffer.concat([parse('', 'BEGIN'), bind('', ''), execute, SYNC, SYNC])), null);
  assert.equal(readLoneStatement(Buffer.concat([parse('', 'BEGIN'), bind('', ''), execute])), null);
  assert.deepEqual(readLoneExecution(Buffer.concat([bind('', 'P_0'), execute, SYNC]), 0), { statement: 'P_0', describe: false });
  assert.equal(readLoneExecution(Buffer.concat([bind('p', 'P_0'), execute, SYNC]), 0), null);
});
