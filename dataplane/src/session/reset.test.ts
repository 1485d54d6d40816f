import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commandComplete } from '../protocol/backend.js';
import { Dirty, dirtyAfterCommand, resetStatements } from './reset.js';

function after(flags: number, tag: string): number {
  const m = commandComplete(tag);
  return dirtyAfterCommand(flags, m, 0, m.length);
}

test('tags that leave session state behind set flags; their undo clears them', () => {
  assert.equal(after(0, 'SELECT 1'), 0);
  assert.equal(after(0, 'SELECT 1000000000000000000'), 0);
  assert.equal(after(0, 'INSERT 0 1'), 0);
  assert.equal(after(0, 'SET'), Dirty.Settings);
  assert.equal(after(0, 'DECLARE CURSOR'), Dirty.Cursors);
  assert.equal(after(Dirty.Cursors, 'CLOSE CURSOR ALL'), 0);
  assert.equal(after(0, 'PREPARE'), Dirty.Prepared);
  assert.equal(after(Dirty.Prepared | Dirty.Settings, 'DEALLOCATE ALL'), Dirty.Settings);
  assert.equal(after(0, 'LISTEN'), Dirty.Listen);
  assert.equal(after(Dirty.Settings | Dirty.Cursors | Dirty.Prepared | Dirty.Listen, 'DISCARD ALL'), 0);
});

test('a tag is matched whole, not by prefix', () => {
  assert.equal(after(0, 'SETX'), 0);
  assert.equal(after(0, 'PREPARED'), 0);
});

test('reset statements cover only what was dirtied', () => {
  const I = 0x49;
  const T = 0x54;
  assert.deepEqual(resetStatements(0, I, false), []);
  assert.deepEqual(resetStatements(0, T, false), ['ROLLBACK']);
  assert.deepEqual(resetStatements(Dirty.Settings | Dirty.Cursors, I, false), ['SET SESSION AUTHORIZATION DEFAULT', 'RESET ALL', 'CLOSE ALL']);
  assert.deepEqual(resetStatements(Dirty.Prepared | Dirty.Listen, I, false), ['DEALLOCATE ALL', 'UNLISTEN *']);
  assert.deepEqual(resetStatements(0, 0x45, true), ['ROLLBACK', 'DISCARD ALL']);
});
