import { test } from 'node:test';
import assert from 'node:assert/strict';
import { beginTag, mayBeTransactionControl, transactionEndTag } from './begin.js';

test('BEGIN and START TRANSACTION with any valid modes are deferrable', () => {
  for (const sql of [
    'begin',
    'BEGIN;',
    '  Begin Work ; ',
    'BEGIN TRANSACTION',
    'START TRANSACTION',
    'start transaction isolation level repeatable read',
    'BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE;',
    'BEGIN READ WRITE NOT DEFERRABLE',
    'BEGIN\nISOLATION   LEVEL\tREAD COMMITTED',
    'begin isolation level read uncommitted',
  ]) {
    assert.equal(beginTag(sql), /^\s*start/i.test(sql) ? 'START TRANSACTION' : 'BEGIN', sql);
  }
});

test('anything else is not a lone BEGIN', () => {
  for (const sql of [
    'BEGIN; SELECT 1',
    'BEGIN ISOLATION LEVEL CHAOS',
    'BEGIN READ',
    'BEGINNING',
    '/* c */ BEGIN',
    'BEGIN ISOLATION LEVEL SERIALIZABLE,',
    'START',
    'BEGIN;;',
    'SELECT 1',
  ]) {
    assert.equal(beginTag(sql), null, sql);
  }
});

test('transaction ends map to the tag PostgreSQL answers with', () => {
  assert.equal(transactionEndTag('commit'), 'COMMIT');
  assert.equal(transactionEndTag('END;'), 'COMMIT');
  assert.equal(transactionEndTag(' COMMIT WORK '), 'COMMIT');
  assert.equal(transactionEndTag('rollback transaction;'), 'ROLLBACK');
  assert.equal(transactionEndTag('ABORT'), 'ROLLBACK');
  assert.equal(transactionEndTag('COMMIT AND CHAIN'), null);
  assert.equal(transactionEndTag('ROLLBACK TO SAVEPOINT a'), null);
  assert.equal(transactionEndTag('COMMIT; SELECT 1'), null);
});

test('the byte-level first look lets through every text the parsers accept and turns most others away', () => {
  const look = (sql: string, inTransaction: boolean): boolean => {
    const buf = Buffer.from(`xx${sql}\0`);
    return mayBeTransactionControl(buf, 2, buf.length - 1, inTransaction);
  };
  for (const sql of ['BEGIN', ' begin work', '\n\tSTART TRANSACTION', 'Begin;']) {
    assert.ok(beginTag(sql) !== null && look(sql, false), sql);
    assert.equal(look(sql, true), false, sql);
  }
  for (const sql of ['COMMIT', '  end', 'rollback work', 'ABORT;']) {
    assert.ok(transactionEndTag(sql) !== null && look(sql, true), sql);
    assert.equal(look(sql, false), false, sql);
  }
  for (const sql of ['SELECT 1', 'set x = 1', 'Update t set a = 1', '', '   ', 'b', 'with x as (select 1) select * from x', '\u00a0BEGIN', '/* c */ BEGIN']) {
    assert.equal(look(sql, false), false, sql);
    assert.equal(look(sql, true), false, sql);
  }
});
