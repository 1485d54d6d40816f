import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyRange, uint32At } from './codes.js';

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
