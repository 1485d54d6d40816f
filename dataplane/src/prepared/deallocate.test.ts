import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deallocateRest, deallocateTarget, dropsAllTag } from './deallocate.js';

test('deallocateTarget reads the name as PostgreSQL does', () => {
  assert.equal(deallocateTarget('DEALLOCATE a'), 'a');
  assert.equal(deallocateTarget('  deallocate prepare _PG3_12 ;'), '_pg3_12');
  assert.equal(deallocateTarget('DEALLOCATE "Mixed ""Case"""'), 'Mixed "Case"');
  assert.equal(deallocateTarget('DEALLOCATE "all"'), 'all');
  for (const other of ['DEALLOCATE ALL', 'deallocate prepare all', 'DEALLOCATE a, b', 'DEALLOCATE', 'SELECT 1', `DEALLOCATE ${'x'.repeat(300)}`]) {
    assert.equal(deallocateTarget(other), null, other);
  }
});

test('dropsAllTag knows DEALLOCATE ALL and DISCARD ALL, and nothing else', () => {
  assert.equal(dropsAllTag('deallocate all'), 'DEALLOCATE ALL');
  assert.equal(dropsAllTag(' DEALLOCATE PREPARE ALL;'), 'DEALLOCATE ALL');
  assert.equal(dropsAllTag('discard ALL'), 'DISCARD ALL');
  for (const other of ['DEALLOCATE "all"', 'DEALLOCATE a', 'DISCARD PLANS', 'DISCARD ALL; SELECT 1', 'SELECT 1']) assert.equal(dropsAllTag(other), null, other);
});

test('deallocateRest is a paramless Parse rest naming the server statement', () => {
  assert.deepEqual(deallocateRest('DOORMAN_7'), Buffer.from('DEALLOCATE "DOORMAN_7"\0\0\0'));
});
