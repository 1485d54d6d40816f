import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyRange, readName, uint32At } from './codes.js';

test('uint32At reads big-endian uint32s as Buffer#readUInt32BE does, high bit included', () => {
  const buf = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x01, 0x7f, 0x00, 0x10, 0x04]);
  for (let at = 0; at + 4 <= buf.length; at++) assert.equal(uint32At(buf, at), buf.readUInt32BE(at), `at ${at}`);
  assert.equal(uint32At(buf, 0), 0xffffffff);
  assert.equal(uint32At(buf, 4), 0x80000000);
  assert.equal(uint32At(buf, 9), 0x7f001004);
});

test('copyRange copies within one buffer and between two, at every length around its thresholds', () => {
  for (let n = 0; n <= 48; n++) {
    const src = Buffer.alloc(64);
    for (let i = 0; i < src.length; i++) src[i] = i + 1;
    const other = Buffer.alloc(128);
    assert.equal(copyRange(src, 3, 3 + n, other, 70), 70 + n);
    assert.deepEqual(other.subarray(70, 70 + n), src.subarray(3, 3 + n));
    assert.equal(other[70 + n], 0);
    const within = Buffer.alloc(128);
    src.copy(within);
    assert.equal(copyRange(within, 3, 3 + n, within, 70), 70 + n);
    assert.deepEqual(within.subarray(70, 70 + n), src.subarray(3, 3 + n));
    assert.deepEqual(within.subarray(0, 64), src, 'the source range is left as it was');
    assert.equal(within[70 + n], 0);
  }
});

test('readName decodes names as toString does, whatever came before it', () => {
  const names = ['P_0', 'P_1', 'P_0', '', 'P_0', 'stmt_ü', 'stmt_ü', 'stmt_ä', 'x'.repeat(64), 'x'.repeat(63) + 'y', 'x'.repeat(65), 'x'.repeat(64) + 'z', 'x'.repeat(64)];
  for (const name of names) {
    const buf = Buffer.concat([Buffer.from('ab'), Buffer.from(name), Buffer.from('\0cd')]);
    assert.equal(readName(buf, 2, buf.length - 3), name);
  }
  const invalid = Buffer.from([0x50, 0xff, 0x30]);
  assert.equal(readName(invalid, 0, 3), invalid.toString('utf8'));
  assert.equal(readName(Buffer.from('P\u00ff0', 'latin1'), 0, 3), invalid.toString('utf8'), 'the same bytes give the same string');
});
