import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agreement, applySync, parseContextOf, parseOptions, reportedName, sharedParams, startupParameters, syncQuery, syncQueryFor, VersionedParams } from './params.js';

test('parseOptions reads -c and -- settings with escaped spaces', () => {
  const m = parseOptions('-c geqo=off --search_path=a\\ b   -cstatement_timeout=5s');
  assert.deepEqual([...m], [
    ['geqo', 'off'],
    ['search_path', 'a b'],
    ['statement_timeout', '5s'],
  ]);
});

test('parseOptions refuses switches a pooler cannot honour', () => {
  assert.throws(() => parseOptions('-B 100'), /unsupported option "-B"/);
  assert.throws(() => parseOptions('-c novalue'), /expected name=value/);
});

test('startupParameters lower-cases names, skips user/database, merges options, splits _pq_ options', () => {
  const { wanted, protocolOptions } = startupParameters(
    new Map([
      ['user', 'u'],
      ['database', 'd'],
      ['DateStyle', 'ISO'],
      ['application_name', 'psql'],
      ['_pq_.compression', 'on'],
      ['options', '-c DateStyle=German -c extra_float_digits=3'],
    ]),
  );
  assert.deepEqual([...wanted], [
    ['datestyle', 'ISO'],
    ['application_name', 'psql'],
    ['extra_float_digits', '3'],
  ]);
  assert.deepEqual(protocolOptions, ['_pq_.compression']);
  assert.throws(() => startupParameters(new Map([['bad name', 'x']])), /invalid parameter name/);
});

test('syncQuery sets what differs and resets unreported leftovers', () => {
  const wanted = new Map([
    ['timezone', 'UTC'],
    ['application_name', "it's"],
    ['extra_float_digits', '3'],
  ]);
  const status = new Map([
    ['timezone', 'UTC'],
    ['application_name', 'doorman'],
    ['server_version', '15.18'],
  ]);
  const extra = new Map([['search_path', 'x']]);
  assert.equal(
    syncQuery(wanted, status, extra),
    "SELECT set_config('application_name', 'it''s', false), set_config('extra_float_digits', '3', false);RESET search_path;",
  );
  applySync(wanted, extra);
  assert.deepEqual([...extra], [['extra_float_digits', '3']]);
  status.set('application_name', "it's");
  assert.equal(syncQuery(wanted, status, extra), null);
});

test('syncQuery: equal values agree; a leftover or a missing unreported value does not', () => {
  const wanted = new Map([
    ['timezone', 'UTC'],
    ['extra_float_digits', '3'],
  ]);
  const status = new Map([['timezone', 'UTC']]);
  assert.equal(syncQuery(wanted, status, new Map([['extra_float_digits', '3']])), null);
  assert.equal(syncQuery(wanted, status, new Map([['extra_float_digits', '3'], ['search_path', 'x']])), 'RESET search_path;');
  assert.equal(syncQuery(wanted, status, new Map()), "SELECT set_config('extra_float_digits', '3', false);");
  assert.equal(syncQuery(wanted, new Map([['timezone', 'UTC']]), new Map([['extra_float_digits', '2']])), "SELECT set_config('extra_float_digits', '3', false);");
  assert.equal(syncQuery(new Map([['timezone', 'UTC']]), new Map(), new Map()), "SELECT set_config('timezone', 'UTC', false);");
});

test('VersionedParams counts real changes; its content key ignores insertion order and cannot be confused', () => {
  const a = new VersionedParams([
    ['timezone', 'UTC'],
    ['search_path', 'a,b'],
  ]);
  const b = new VersionedParams([
    ['search_path', 'a,b'],
    ['timezone', 'UTC'],
  ]);
  assert.equal(a.contentKey(), b.contentKey());
  const v = a.version;
  a.set('timezone', 'UTC');
  assert.equal(a.version, v, 'the same value is no change');
  a.set('timezone', 'Europe/Paris');
  assert.notEqual(a.contentKey(), b.contentKey());
  a.delete('timezone');
  a.set('timezone', 'UTC');
  assert.equal(a.contentKey(), b.contentKey());
  assert.ok(a.version > v);
  const c = new VersionedParams([['search_path', 'a'], ['b', ''], ['timezone', 'UTC']]);
  assert.notEqual(c.contentKey(), b.contentKey());
});

test('syncQueryFor: an agreement holds for equal wanted values until either side changes', () => {
  const status = new VersionedParams([['timezone', 'UTC']]);
  const extra = new VersionedParams([['extra_float_digits', '3']]);
  const agreement = new Agreement();
  const wanted = (): VersionedParams =>
    new VersionedParams([
      ['timezone', 'UTC'],
      ['extra_float_digits', '3'],
    ]);
  assert.equal(syncQueryFor(wanted(), status, extra, agreement), null);
  // Another client with the same values: still in agreement.
  const other = wanted();
  assert.equal(syncQueryFor(other, status, extra, agreement), null);
  status.set('timezone', 'Asia/Tokyo');
  assert.equal(syncQueryFor(other, status, extra, agreement), "SELECT set_config('timezone', 'UTC', false);");
  status.set('timezone', 'UTC');
  assert.equal(syncQueryFor(other, status, extra, agreement), null);
  extra.set('search_path', 'x');
  assert.equal(syncQueryFor(other, status, extra, agreement), 'RESET search_path;');
  extra.delete('search_path');
  assert.equal(syncQueryFor(other, status, extra, agreement), null);
  other.set('extra_float_digits', '2');
  assert.equal(syncQueryFor(other, status, extra, agreement), "SELECT set_config('extra_float_digits', '2', false);");
});

test('reportedName restores PostgreSQL spelling', () => {
  assert.equal(reportedName('datestyle'), 'DateStyle');
  assert.equal(reportedName('timezone'), 'TimeZone');
  assert.equal(reportedName('search_path'), 'search_path');
});

test('sharedParams: one copy per content, whatever the order; VersionedParams.of starts from it with its key', () => {
  const a = sharedParams(new Map([['application_name', 'app'], ['timezone', 'UTC']]));
  const b = sharedParams(new Map([['timezone', 'UTC'], ['application_name', 'app']]));
  const c = sharedParams(new Map([['timezone', 'UTC'], ['application_name', 'other']]));
  assert.equal(a, b);
  assert.notEqual(a, c);
  assert.equal(a.key, new VersionedParams(a.values).contentKey());

  const own = VersionedParams.of(a);
  assert.equal(own.contentKey(), a.key);
  own.set('timezone', 'Europe/Paris');
  assert.equal(own.contentKey(), new VersionedParams([['application_name', 'app'], ['timezone', 'Europe/Paris']]).contentKey());
  assert.equal(a.values.get('timezone'), 'UTC', 'the shared copy is not changed through a client');
});

test('sharedParams is bounded: past its limit it starts again instead of growing', () => {
  const first = sharedParams(new Map([['application_name', 'bounded-0']]));
  for (let i = 1; i <= 1024; i++) sharedParams(new Map([['application_name', `bounded-${i}`]]));
  assert.notEqual(sharedParams(new Map([['application_name', 'bounded-0']])), first);
});

test('parseContextOf: only the parameters that change how a text parses, in a fixed order', () => {
  const a = new Map([['application_name', 'one'], ['search_path', 'app'], ['timezone', 'UTC']]);
  const b = new Map([['timezone', 'UTC'], ['search_path', 'app'], ['application_name', 'two'], ['extra_float_digits', '3']]);
  assert.equal(parseContextOf(a), parseContextOf(b));
  assert.notEqual(parseContextOf(a), parseContextOf(new Map([['search_path', 'other'], ['timezone', 'UTC']])));
  assert.equal(parseContextOf(new Map([['application_name', 'x']])), '');
});
