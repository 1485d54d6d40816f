/** etcd stopped for 10 s: streams stay open, cached reads work, writes fail UNAVAILABLE, and everything catches up. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { status, type ServiceError } from '@grpc/grpc-js';
import { startEtcd, type EtcdProcess } from '../harness/etcd.js';
import {
  adminCall,
  makeControlPlaneSecurity,
  SimulatedDataPlane,
  startControlPlane,
  type ControlPlaneProcess,
  type ControlPlaneSecurity,
} from '../harness/controlplane.js';
import { eventually } from '../harness/async.js';

let etcd: EtcdProcess;
let security: ControlPlaneSecurity;
const replicas: ControlPlaneProcess[] = [];
const planes: SimulatedDataPlane[] = [];

before(async () => {
  etcd = await startEtcd();
  security = await makeControlPlaneSecurity();
  for (const id of ['r1', 'r2']) replicas.push(await startControlPlane({ etcd: etcd.endpoint, security, prefix: '/outage/', leaseTtl: 2, replicaId: id }));
});

after(async () => {
  for (const p of planes) p.close();
  for (const r of replicas) await r.stop();
  await etcd?.remove();
  await security?.remove();
});

const docFor = (size: number): string =>
  `pools:\n  app:\n    server_host: 127.0.0.1\n    users:\n      - username: u\n        password: p\n        pool_size: ${size}\n`;

async function applyOnLeader(size: number): Promise<number> {
  const st = await adminCall(replicas[0]!.adminClient(), 'status', {});
  const leader = replicas.find((r) => r.address === st.leader);
  if (!leader) throw new Error('no leader');
  return (await adminCall(leader.adminClient(), 'apply', { documentYaml: docFor(size) }, undefined, 5_000)).generation;
}

test('etcd down for 10 s', { timeout: 120_000 }, async () => {
  await eventually(() => adminCall(replicas[0]!.adminClient(), 'status', {}), (s) => s.leader !== '', 10_000, 'a leader');
  const g1 = await applyOnLeader(1);
  for (const [i, r] of replicas.entries()) {
    const p = new SimulatedDataPlane(r.discoveryClient(), { nodeId: `dp${i}` });
    planes.push(p);
    p.connect();
    await p.waitForConfig(g1, 10_000);
  }

  await etcd.stop();
  const downAt = Date.now();
  // Reads of cached state and failing writes, on both replicas, while etcd is down.
  await sleep(3_000);
  for (const r of replicas) {
    const admin = r.adminClient();
    const config = await adminCall(admin, 'get', { kind: 'users' }, undefined, 5_000);
    assert.equal(config.generation, g1);
    assert.equal((JSON.parse(config.json) as { pool_size: number }[])[0]?.pool_size, 1);
    const history = await adminCall(admin, 'history', {}, undefined, 5_000);
    assert.equal(history.entries[0]?.generation, g1);
    const st = await adminCall(admin, 'status', {}, undefined, 5_000);
    assert.equal(st.generation, g1);
    await assert.rejects(adminCall(admin, 'apply', { documentYaml: docFor(2) }, undefined, 8_000), (e) => {
      // A follower may still name the last known leader; the leader itself (or anyone once it knows) says UNAVAILABLE.
      const code = (e as ServiceError).code;
      assert.ok(code === status.UNAVAILABLE || code === status.FAILED_PRECONDITION, `code ${code}: ${(e as ServiceError).details}`);
      return true;
    });
  }
  const leaderless = await Promise.all(
    replicas.map((r) => adminCall(r.adminClient(), 'apply', { documentYaml: docFor(2) }, undefined, 8_000).then(() => -1, (e: ServiceError) => e.code)),
  );
  assert.ok(leaderless.includes(status.UNAVAILABLE), `some replica answers UNAVAILABLE: ${leaderless.join(',')}`);
  while (Date.now() - downAt < 10_000) await sleep(200);
  for (const p of planes) assert.equal(p.ended, null, `${p.nodeId}'s stream stayed open`);

  await etcd.restart();
  const upAt = Date.now();
  const g2 = await eventually(() => applyOnLeader(3).catch(() => -1), (g) => g > g1, 30_000, 'a write after etcd is back');
  const writableAfterMs = Date.now() - upAt;
  await Promise.all(planes.map((p) => p.waitForConfig(g2, 15_000)));
  const caughtUpMs = Date.now() - upAt;
  for (const p of planes) assert.equal(p.configVersion, g2);
  console.log(`etcd outage: writes accepted ${writableAfterMs} ms after etcd restarted; both data planes on generation ${g2} after ${caughtUpMs} ms`);
});
