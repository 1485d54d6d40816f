import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uint32At } from './codes.js';

test('uint32At reads big-endian uint32s as Buffer#readUInt32BE does, high bit included', () => {
  const buf = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x01, 0x7f, 0x00, 0x10, 0x04]);
  for (let at = 0; at + 4 <= buf.length; at++) assert.equal(uint32At(buf, at), buf.readUInt32BE(at), `at ${at}`);
  assert.equal(uint32At(buf, 0), 0xffffffff);
  assert.equal(uint32At(buf, 4), 0x80000000);
  assert.equal(uint32At(buf, 9), 0x7f001004);
});
