import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { createEtcdClient } from './etcd-client.js';
import { EtcdStore } from './etcd-store.js';
import type { GenerationRecord } from './store.js';
import { startTestEtcd, type TestEtcd } from './test-etcd.js';

const log = pino({ level: 'silent' });
let etcd: TestEtcd;
const stores: EtcdStore[] = [];

before(async () => {
  etcd = await startTestEtcd();
});
after(async () => {
  for (const s of stores) await s.close();
  await etcd.stop();
});

async function store(prefix: string): Promise<EtcdStore> {
  const s = new EtcdStore(createEtcdClient({ endpoints: [etcd.endpoint], callTimeoutMs: 3000 }), prefix, log, { livenessIntervalMs: 1000 });
  stores.push(s);
  await s.start();
  return s;
}

function record(generation: number, secretsGeneration = 1): GenerationRecord {
  return { generation, author: 't', appliedAtUnixMs: generation, summary: `g${generation}`, document: { g: generation }, secretsGeneration };
}

async function until(fn: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('CAS on the generation key: a stale mod revision is a conflict; a foreign fence is fenced', { timeout: 30_000 }, async () => {
  const s = await store('/t-cas/');
  const lease = await s.grantLease(5);
  const fenceRev = await s.tryAcquireLeader({ replicaId: 'a', address: 'a:1' }, lease);
  assert.ok(fenceRev !== null);
  assert.equal(await s.tryAcquireLeader({ replicaId: 'b', address: 'b:1' }, lease), null, 'the key is taken');
  const fence = { createRevision: fenceRev };
  const head0 = await s.readHead();
  assert.deepEqual([head0.generation, head0.modRevision, head0.record], [0, '0', null]);
  assert.equal(await s.commit({ fence, expectedModRevision: '0', record: record(1), sealedSecrets: { v: 1 }, pruneGenerationsBelow: 0, pruneSecretsBelow: 0 }), 'committed');
  const head1 = await s.readHead();
  assert.equal(head1.generation, 1);
  assert.equal(head1.secretsGeneration, 1);
  assert.deepEqual(head1.sealedSecrets, { v: 1 });
  assert.equal(await s.commit({ fence, expectedModRevision: head0.modRevision, record: record(2), pruneGenerationsBelow: 0, pruneSecretsBelow: 0 }), 'conflict');
  assert.equal(await s.commit({ fence: { createRevision: '1' }, expectedModRevision: head1.modRevision, record: record(2), pruneGenerationsBelow: 0, pruneSecretsBelow: 0 }), 'fenced');
  assert.equal((await s.readHead()).generation, 1);
  await until(() => s.view().generation === 1 && s.view().leader?.record.replicaId === 'a', 'the watch cache');
});

test('history is pruned to the last K in the same transaction', { timeout: 30_000 }, async () => {
  const s = await store('/t-prune/');
  const lease = await s.grantLease(5);
  const fence = { createRevision: (await s.tryAcquireLeader({ replicaId: 'a', address: 'a:1' }, lease)) as string };
  const K = 3;
  for (let g = 1; g <= 7; g++) {
    const head = await s.readHead();
    const outcome = await s.commit({
      fence,
      expectedModRevision: head.modRevision,
      record: record(g, g),
      sealedSecrets: { v: g },
      pruneGenerationsBelow: g - K + 1,
      pruneSecretsBelow: g - K + 1,
    });
    assert.equal(outcome, 'committed');
  }
  await until(() => s.view().generation === 7, 'generation 7 in the cache');
  assert.deepEqual([...s.view().generations.keys()].sort((a, b) => a - b), [5, 6, 7]);
  assert.deepEqual([...s.view().secrets.keys()].sort((a, b) => a - b), [5, 6, 7]);
  assert.equal(await s.readGeneration(4), null);
});

test('leases: keepalive succeeds while granted; a revoked lease deletes the leader key', { timeout: 30_000 }, async () => {
  const s = await store('/t-lease/');
  const lease = await s.grantLease(5);
  assert.equal(await s.keepAlive(lease, 2000), true);
  await s.tryAcquireLeader({ replicaId: 'a', address: 'a:1' }, lease);
  await until(() => s.view().leader !== null, 'leader in cache');
  await s.revokeLease(lease);
  assert.equal(await s.keepAlive(lease, 2000), false);
  await until(() => s.view().leader === null, 'leader key deleted');
});

test('node records: batched writes past 128 operations; detach only by the holder', { timeout: 30_000 }, async () => {
  const s = await store('/t-nodes/');
  const lease = await s.grantLease(5);
  const node = (i: number) => ({
    nodeId: `n${i}`, labels: {}, version: '1', hostname: 'h', pid: i, connected: true, lastSeenUnixMs: 1,
    ackedConfigVersion: 0, ackedSecretsVersion: 0, nackedVersion: 0, nackError: '', attachedTo: 'a:1', clients: 0, servers: 0, pools: [],
  });
  await s.writeNodes(Array.from({ length: 150 }, (_, i) => ({ record: node(i), live: true })), lease);
  await until(() => s.view().nodes.size === 150 && s.view().live.size === 150, '150 nodes and live keys');
  await s.detachNode({ ...node(1), connected: false }, 'b:1');
  await s.detachNode({ ...node(2), connected: false }, 'a:1');
  await until(() => s.view().live.size === 149, 'one live key gone');
  assert.equal(s.view().live.has('n1'), true);
  assert.equal(s.view().nodes.get('n2')?.connected, false);
  await s.revokeLease(lease);
  await until(() => s.view().live.size === 0, 'live keys lapse with the lease');
  assert.equal(s.view().nodes.size, 150);
});
