import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseOpenFilesLimit } from './fd-limit.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20000                65536                files
Max locked memory         8388608              8388608              bytes
`;

test('parseOpenFilesLimit reads soft and hard limits', () => {
  assert.deepEqual(parseOpenFilesLimit(LIMITS), { soft: 20000, hard: 65536 });
});

test('parseOpenFilesLimit maps unlimited to Infinity and rejects other text', () => {
  assert.deepEqual(parseOpenFilesLimit('Max open files            1024                 unlimited            files\n'), { soft: 1024, hard: Infinity });
  assert.equal(parseOpenFilesLimit('Max cpu time unlimited unlimited seconds\n'), null);
});
