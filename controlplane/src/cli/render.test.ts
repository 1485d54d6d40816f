import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeStatus, StatusResponse } from '@doorman/proto/api';
import { formatAge, formatDiff, formatHistory, formatNodes, formatStats, formatStatus, objectsTable, renderTable } from './render.js';

test('renderTable pads columns, right-aligns numeric ones and trims line ends', () => {
  const out = renderTable(['NAME', 'SIZE', 'NOTE'], [['app', 20, 'yes'], ['analytics', 5, null], ['x', 100, true]]);
  assert.equal(out, ['NAME       SIZE  NOTE', 'app          20  yes', 'analytics     5', 'x           100  yes', ''].join('\n'));
  assert.equal(renderTable(['A'], []), 'A\n');
});

test('objectsTable: columns in first-seen key order, nested values as JSON; null for non-lists', () => {
  const out = objectsTable([{ database: 'app', users: 2 }, { database: 'b', users: 1, mode: { x: 1 } }]);
  assert.equal(out, ['DATABASE  USERS  MODE', 'app           2', 'b             1  {"x":1}', ''].join('\n'));
  assert.equal(objectsTable({ general: {} }), null);
  assert.equal(objectsTable([]), '(none)\n');
  assert.equal(objectsTable([1, 2]), null);
});

test('formatDiff marks added, removed and changed entries and restart-required fields', () => {
  const out = formatDiff([
    { change: 'added', path: 'pools.new', before: '', after: '', restartRequired: false },
    { change: 'changed', path: 'pools.app.users.alice.pool_size', before: '20', after: '30', restartRequired: false },
    { change: 'changed', path: 'general.port', before: '6432', after: '6433', restartRequired: true },
    { change: 'removed', path: 'pools.old', before: '', after: '', restartRequired: false },
  ]);
  assert.equal(
    out,
    [
      '+ pools.new',
      '~ pools.app.users.alice.pool_size: 20 -> 30',
      '~ general.port: 6432 -> 6433 (restart required)',
      '- pools.old',
      '',
    ].join('\n'),
  );
});

test('formatAge', () => {
  const now = 1_000_000_000;
  assert.equal(formatAge(0, now), 'never');
  assert.equal(formatAge(now - 4_200, now), '4s ago');
  assert.equal(formatAge(now - 180_000, now), '3m ago');
  assert.equal(formatAge(now - 3 * 3_600_000, now), '3h ago');
  assert.equal(formatAge(now - 5 * 86_400_000, now), '5d ago');
  assert.equal(formatAge(now + 5_000, now), '0s ago');
});

function node(id: string, extra: Partial<NodeStatus> = {}): NodeStatus {
  return {
    node: { nodeId: id, labels: {}, version: '0.1.0', hostname: 'h', pid: 1 },
    connected: true,
    lastSeenUnixMs: 0,
    ackedConfigVersion: 3,
    ackedSecretsVersion: 2,
    nackedVersion: 0,
    nackError: '',
    attachedTo: '127.0.0.1:7001',
    clients: 4,
    servers: 1,
    ...extra,
  };
}

test('formatStatus: one row per node sorted by id, then every NACK reason in full', () => {
  const now = 10_000_000;
  const s: StatusResponse = {
    generation: 4,
    secretsGeneration: 2,
    replica: 'r1',
    leader: 'r2',
    nodes: [
      node('dp-b', { lastSeenUnixMs: now - 2_000, nackedVersion: 4, nackError: 'general.tls_certificate: cannot read "/x": ENOENT\ngeneral.tls_private_key: cannot read "/y": ENOENT' }),
      node('dp-a', { lastSeenUnixMs: now - 1_000, ackedConfigVersion: 4 }),
    ],
  };
  assert.equal(
    formatStatus(s, now),
    [
      'generation 4, secrets 2; answered by r1, leader r2',
      'NODE  CONNECTED  CONFIG  SECRETS  NACK  LAST SEEN  VERSION  ATTACHED TO     CLIENTS  SERVERS',
      'dp-a  yes             4        2        1s ago     0.1.0    127.0.0.1:7001        4        1',
      'dp-b  yes             3        2  v4    2s ago     0.1.0    127.0.0.1:7001        4        1',
      '',
      'dp-b refused version 4:',
      '  general.tls_certificate: cannot read "/x": ENOENT',
      '  general.tls_private_key: cannot read "/y": ENOENT',
      '',
    ].join('\n'),
  );
  assert.equal(formatStatus({ ...s, nodes: [] }, now), 'generation 4, secrets 2; answered by r1, leader r2\nno data planes registered\n');
});

test('formatHistory and formatStats', () => {
  assert.equal(
    formatHistory([{ generation: 2, author: 'ann@h', appliedAtUnixMs: Date.UTC(2025, 0, 2, 3, 4, 5), summary: 'apply: +1 pool' }]),
    'GENERATION  APPLIED                   AUTHOR  SUMMARY\n         2  2025-01-02T03:04:05.000Z  ann@h   apply: +1 pool\n',
  );
  assert.equal(formatHistory([]), 'no history\n');
  const pool = {
    database: 'app', user: 'alice', poolMode: 'transaction', clientsActive: 3, clientsWaiting: 1, serversActive: 2, serversIdle: 4,
    serversOther: 0, transactionsTotal: 10, queriesTotal: 12, bytesReceived: 0, bytesSent: 0, waitTimeUsTotal: 0, transactionP99Ms: 0, waitP99Ms: 1.5,
  };
  const out = formatStats({ totals: [pool], pools: [{ nodeId: 'dp-1', pool }] }, true).split('\n');
  assert.equal(out[0], 'DATABASE  USER   MODE         CL ACTIVE  CL WAITING  SV ACTIVE  SV IDLE  SV OTHER  TRANSACTIONS  QUERIES  WAIT P99 MS');
  assert.equal(out[1], 'app       alice  transaction          3           1          2        4         0            10       12          1.5');
  assert.equal(out[3].startsWith('NODE  DATABASE'), true);
  assert.equal(out[4].startsWith('dp-1  app       alice'), true);
  assert.equal(formatStats({ totals: [], pools: [] }, false), 'no pool figures reported yet\n');
});

test('formatNodes: identity, sorted labels, liveness', () => {
  const now = 50_000;
  const n = node('dp-1', { lastSeenUnixMs: now - 3_000, connected: false });
  n.node!.labels = { host: 'h1', cluster: 'c' };
  assert.equal(
    formatNodes({ nodes: [n] }, now),
    [
      'NODE  CONNECTED  LABELS             VERSION  HOSTNAME  PID  CONFIG  LAST SEEN  ATTACHED TO',
      'dp-1  no         cluster=c,host=h1  0.1.0    h           1       3  3s ago     127.0.0.1:7001',
      '',
    ].join('\n'),
  );
  assert.equal(formatNodes({ nodes: [] }, now), 'no data planes registered\n');
});
