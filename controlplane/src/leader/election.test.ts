import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { isCpError } from '../errors.js';
import { createEtcdClient } from '../store/etcd-client.js';
import { EtcdStore } from '../store/etcd-store.js';
import { startTestEtcd, type TestEtcd } from '../store/test-etcd.js';
import { Election, Role } from './election.js';
import { Session } from './session.js';

const log = pino({ level: 'silent' });
let etcd: TestEtcd;
before(async () => {
  etcd = await startTestEtcd();
});
after(async () => {
  await etcd.stop();
});

interface Replica {
  store: EtcdStore;
  session: Session;
  election: Election;
}

async function replica(prefix: string, name: string, ttl = 2): Promise<Replica> {
  const store = new EtcdStore(createEtcdClient({ endpoints: [etcd.endpoint], callTimeoutMs: 2000 }), prefix, log, { livenessIntervalMs: 1000 });
  await store.start();
  const session = new Session(store, ttl, log);
  const election = new Election(store, session, { replicaId: name, address: `${name}:1` }, log, 500);
  election.start();
  return { store, session, election };
}

async function until(fn: () => boolean, ms: number, what: string): Promise<number> {
  const start = Date.now();
  while (!fn()) {
    if (Date.now() - start > ms) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return Date.now() - start;
}

async function close(r: Replica): Promise<void> {
  await r.election.stop();
  await r.session.close();
  await r.store.close();
}

test('exactly one leader; a follower names it; a graceful stop hands over at once', { timeout: 30_000 }, async () => {
  const a = await replica('/e1/', 'a');
  await until(() => a.election.isLeader(), 5000, 'a leads');
  const b = await replica('/e1/', 'b');
  await until(() => b.store.view().leader?.record.replicaId === 'a', 5000, 'b sees a');
  assert.equal(b.election.role, Role.Follower);
  assert.throws(() => b.election.fence(), (e) => isCpError(e, 'NOT_LEADER') && e.meta.leader === 'a:1');
  const fenceA = a.election.fence();
  await close(a);
  const took = await until(() => b.election.isLeader(), 3000, 'b leads');
  assert.ok(took < 3000);
  assert.notEqual(b.election.fence().createRevision, fenceA.createRevision);
  await close(b);
});

test('a leader whose lease is revoked behind its back stops leading within the TTL and campaigns again', { timeout: 30_000 }, async () => {
  const a = await replica('/e2/', 'a', 2);
  await until(() => a.election.isLeader(), 5000, 'a leads');
  const firstLease = a.session.leaseId as string;
  const demoted = new Promise<string>((resolve) => a.election.once('demoted', resolve));
  await a.store.revokeLease(firstLease);
  const reason = await demoted;
  assert.match(reason, /leader key belongs to someone else|lease lost/);
  assert.equal(a.election.isLeader(), false);
  await until(() => a.election.isLeader(), 8000, 'a leads again on a new lease');
  assert.notEqual(a.session.leaseId, firstLease);
  await close(a);
});
