import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Election } from '../leader/election.js';
import { Session } from '../leader/session.js';
import { createEtcdClient } from '../store/etcd-client.js';
import { EtcdStore } from '../store/etcd-store.js';
import type { NodeRecord } from '../store/store.js';
import { startTestEtcd, type TestEtcd } from '../store/test-etcd.js';
import { NodeRetention } from './retention.js';

const log = pino({ level: 'silent' });
const RETENTION_MS = 5_000;
let etcd: TestEtcd;
const closers: (() => Promise<void>)[] = [];

before(async () => {
  etcd = await startTestEtcd();
});
after(async () => {
  for (const close of closers.reverse()) await close();
  await etcd.stop();
});

async function replica(prefix: string, name: string): Promise<{ store: EtcdStore; session: Session; election: Election }> {
  const store = new EtcdStore(createEtcdClient({ endpoints: [etcd.endpoint], callTimeoutMs: 2000 }), prefix, log, { livenessIntervalMs: 1000 });
  await store.start();
  const session = new Session(store, 5, log);
  const election = new Election(store, session, { replicaId: name, address: `${name}:1` }, log, 500);
  election.start();
  closers.push(async () => {
    await election.stop();
    await session.close();
    await store.close();
  });
  return { store, session, election };
}

async function until(fn: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !fn(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(fn(), `timed out waiting for ${what}`);
}

function node(nodeId: string, connected: boolean, lastSeenUnixMs: number): NodeRecord {
  return {
    nodeId,
    labels: { role: 'db' },
    version: '0.1.0',
    hostname: `${nodeId}.local`,
    pid: 1,
    connected,
    lastSeenUnixMs,
    ackedConfigVersion: 3,
    ackedSecretsVersion: 1,
    nackedVersion: 0,
    nackError: '',
    attachedTo: 'a:1',
    clients: 0,
    servers: 0,
    pools: [],
  };
}

test('the leader forgets nodes gone longer than the retention, and only those; a follower forgets nothing', { timeout: 30_000 }, async () => {
  const a = await replica('/retention/', 'a');
  await until(() => a.election.isLeader(), 'a leads');
  const now = Date.now();
  const lease = await a.store.grantLease(30);
  await a.store.writeNodes(
    [
      { record: node('gone', false, now - 2 * RETENTION_MS), live: false },
      { record: node('recent', false, now - 100), live: false },
      // Connected: its liveness key is held on a lease, however old its last report.
      { record: node('live', true, now - 2 * RETENTION_MS), live: true },
      // Its replica died: the record still says connected, but no liveness key holds it.
      { record: node('orphan', true, now - 2 * RETENTION_MS), live: false },
    ],
    lease,
  );
  await until(() => a.store.view().nodes.size === 4 && a.store.view().live.has('live'), 'the four records');

  const b = await replica('/retention/', 'b');
  await until(() => b.store.view().nodes.size === 4 && b.store.view().leader !== null, 'b sees them and the leader');
  assert.equal(await new NodeRetention(b.store, b.election, () => new Map(), RETENTION_MS, log).sweep(now), 0, 'a follower');

  assert.equal(await new NodeRetention(a.store, a.election, () => new Map(), RETENTION_MS, log).sweep(now), 2);
  await until(() => a.store.view().nodes.size === 2, 'the deletes in the view');
  assert.deepEqual([...a.store.view().nodes.keys()].sort(), ['live', 'recent']);
});

test('forgetNode deletes only the record as read, with no liveness key, under the leader\'s fence', { timeout: 30_000 }, async () => {
  const a = await replica('/retention-cas/', 'a');
  await until(() => a.election.isLeader(), 'a leads');
  const lease = await a.store.grantLease(30);
  const fence = a.election.fence();
  const old = node('back', false, Date.now() - 2 * RETENTION_MS);
  const newer = { ...old, lastSeenUnixMs: Date.now() };
  await a.store.writeNodes([{ record: old, live: false }], lease);
  await a.store.writeNodes([{ record: newer, live: false }], lease);
  assert.equal(await a.store.forgetNode(old, fence), false, 'the node came back since it was read');
  assert.equal(await a.store.forgetNode(newer, { createRevision: '1' }), false, 'a stale fence');
  assert.equal(await a.store.forgetNode(newer, fence), true);
  const live = node('live', true, Date.now() - 2 * RETENTION_MS);
  await a.store.writeNodes([{ record: live, live: true }], lease);
  assert.equal(await a.store.forgetNode(live, fence), false, 'a liveness key holds it');
  await until(() => a.store.view().nodes.size === 1 && a.store.view().nodes.has('live'), 'the view');
});
