import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildParse, readParse } from '../protocol/extended.js';
import { isStatementOf, ServerStatements, StatementRegistry } from './statements.js';

function parseMsg(name: string, sql: string, oids: number[] = []): { buf: Buffer; restStart: number } {
  const rest = Buffer.alloc(Buffer.byteLength(sql) + 3 + 4 * oids.length);
  let p = rest.write(sql);
  rest[p++] = 0;
  p = rest.writeInt16BE(oids.length, p);
  for (const o of oids) p = rest.writeInt32BE(o, p);
  const buf = buildParse(name, rest);
  return { buf, restStart: readParse(buf, 0, buf.length).restStart };
}

/** One registered statement per `select <q>`. */
function selects(qs: string[]) {
  const r = new StatementRegistry(10);
  return qs.map((q) => {
    const p = parseMsg('', `select ${q}`);
    return r.lookup(p.buf, p.restStart, p.buf.length);
  });
}

test('one statement per (query text, parameter types), whatever the client calls it', () => {
  const r = new StatementRegistry(100);
  const a = parseMsg('s1', 'select $1', [23]);
  const b = parseMsg('other', 'select $1', [23]);
  const c = parseMsg('s1', 'select $1', [25]);
  const sa = r.lookup(a.buf, a.restStart, a.buf.length);
  assert.equal(r.lookup(b.buf, b.restStart, b.buf.length), sa);
  assert.notEqual(r.lookup(c.buf, c.restStart, c.buf.length), sa);
  assert.equal(r.find(b.buf, b.restStart, b.buf.length), sa);
  assert.match(sa.name, /^DOORMAN_\d+$/);
  const reparsed = readParse(sa.parse, 0, sa.parse.length);
  assert.equal(reparsed.name, sa.name);
  assert.deepEqual(sa.parse.subarray(reparsed.restStart), a.buf.subarray(a.restStart));
});

test('the same text under another parse context is another statement', () => {
  const r = new StatementRegistry(100);
  const a = parseMsg('s1', 'select * from t');
  const here = r.lookup(a.buf, a.restStart, a.buf.length, 'search_path=a\0');
  const there = r.lookup(a.buf, a.restStart, a.buf.length, 'search_path=b\0');
  assert.notEqual(here.name, there.name);
  assert.equal(r.lookup(a.buf, a.restStart, a.buf.length, 'search_path=a\0'), here);
  assert.equal(r.find(a.buf, a.restStart, a.buf.length, 'search_path=b\0'), there);
  assert.equal(r.find(a.buf, a.restStart, a.buf.length), undefined);
  r.retire(here);
  assert.equal(r.find(a.buf, a.restStart, a.buf.length, 'search_path=b\0'), there, 'retiring one context leaves the other');
});

test('a retired statement keeps its name; the next Parse of its text gets a new one', () => {
  const r = new StatementRegistry(100);
  const a = parseMsg('s1', 'select * from t');
  const old = r.lookup(a.buf, a.restStart, a.buf.length);
  r.retire(old);
  assert.equal(old.retired, true);
  assert.equal(r.find(a.buf, a.restStart, a.buf.length), undefined);
  const fresh = r.lookup(a.buf, a.restStart, a.buf.length);
  assert.notEqual(fresh.name, old.name);
  assert.equal(fresh.retired, false);
  // Retiring the old one again leaves the new registration alone.
  r.retire(old);
  assert.equal(r.find(a.buf, a.restStart, a.buf.length), fresh);
});

test('BEGIN and transaction ends are marked, only without parameters', () => {
  const r = new StatementRegistry(100);
  const m = (sql: string, oids: number[] = []) => {
    const p = parseMsg('', sql, oids);
    return r.lookup(p.buf, p.restStart, p.buf.length);
  };
  assert.equal(m('BEGIN ISOLATION LEVEL SERIALIZABLE').begin, 'BEGIN ISOLATION LEVEL SERIALIZABLE');
  assert.equal(m('END;').end, 'COMMIT');
  assert.equal(m('rollback').end, 'ROLLBACK');
  assert.equal(m('select 1').begin, null);
  assert.equal(m('BEGIN', [0]).begin, null);
});

test('DEALLOCATE of one name and the statements that drop every name are marked, only without parameters', () => {
  const r = new StatementRegistry(100);
  const m = (sql: string, oids: number[] = []) => {
    const p = parseMsg('', sql, oids);
    return r.lookup(p.buf, p.restStart, p.buf.length);
  };
  assert.deepEqual([m('DEALLOCATE _pg3_0').deallocates, m('DEALLOCATE _pg3_0').dropsAll], ['_pg3_0', null]);
  assert.deepEqual([m('deallocate all').deallocates, m('deallocate all').dropsAll], [null, 'DEALLOCATE ALL']);
  assert.equal(m('DISCARD ALL').dropsAll, 'DISCARD ALL');
  assert.equal(m('DEALLOCATE x', [0]).deallocates, null);
  assert.deepEqual([m('select 1').deallocates, m('select 1').dropsAll], [null, null]);
});

test('the registry forgets its oldest entries past its limit; holders keep theirs', () => {
  const r = new StatementRegistry(2);
  const s = ['a', 'b', 'c'].map((q) => {
    const p = parseMsg('', `select '${q}'`);
    return { p, st: r.lookup(p.buf, p.restStart, p.buf.length) };
  });
  assert.equal(r.size, 2);
  assert.equal(r.find(s[0].p.buf, s[0].p.restStart, s[0].p.buf.length), undefined);
  assert.equal(r.find(s[2].p.buf, s[2].p.restStart, s[2].p.buf.length), s[2].st);
});

test('a server evicts the least recently used statement other than the one it needs now', () => {
  const sts = selects(['1', '2', '3']);
  const held = new ServerStatements();
  held.use(sts[0]);
  held.use(sts[1]);
  held.use(sts[2]);
  held.use(sts[0]);
  assert.equal(held.victim(sts[2]), sts[1]);
  assert.equal(held.victim(sts[1]), sts[2]);
  held.delete(sts[2]);
  held.delete(sts[0]);
  assert.equal(held.victim(sts[1]), null);
  assert.equal(held.size, 1);
});

test('a Parse is recognised as a statement by its text and parameter types alone, short or long', () => {
  const r = new StatementRegistry(10);
  const long = `select ${'x, '.repeat(40)}$1`;
  for (const sql of ['select $1', long]) {
    const a = parseMsg('client_name', sql, [23]);
    const st = r.lookup(a.buf, a.restStart, a.buf.length);
    assert.deepEqual(st.parse.subarray(st.restAt), a.buf.subarray(a.restStart));
    const same = parseMsg('', sql, [23]);
    assert.equal(isStatementOf(st, same.buf, same.restStart, same.buf.length), true);
    const otherType = parseMsg('', sql, [25]);
    assert.equal(isStatementOf(st, otherType.buf, otherType.restStart, otherType.buf.length), false);
    const otherText = parseMsg('', sql.replace('$1', '$2'), [23]);
    assert.equal(isStatementOf(st, otherText.buf, otherText.restStart, otherText.buf.length), false);
    const longer = parseMsg('', `${sql} `, [23]);
    assert.equal(isStatementOf(st, longer.buf, longer.restStart, longer.buf.length), false);
  }
});

test('using the newest statement again keeps the order; clear forgets everything', () => {
  const sts = selects(['1', '2']);
  const held = new ServerStatements();
  held.use(sts[0]);
  held.use(sts[1]);
  held.use(sts[1]);
  assert.equal(held.victim(sts[1]), sts[0]);
  assert.equal(held.has(sts[0]), true);
  held.clear();
  assert.equal(held.size, 0);
  assert.equal(held.has(sts[0]), false);
  assert.equal(held.victim(sts[1]), null);
});

test('a server set taken whole comes back whole; the victim spares a second statement when asked', () => {
  const sts = selects(['1', '2', '3']);
  const held = new ServerStatements();
  for (const st of sts) held.use(st);
  assert.equal(held.victim(sts[2], sts[0]), sts[1]);
  const taken = held.takeAll();
  assert.equal(held.size, 0);
  held.use(sts[0]);
  held.restore(taken);
  assert.deepEqual([held.size, held.has(sts[2]), held.victim(sts[2])], [3, true, sts[0]]);
});
