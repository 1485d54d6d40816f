/** 500 simulated data-plane streams on one control plane: apply-to-all-acked latency and RSS. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DiscoveryClient } from '@doorman/proto/api';
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

const NODES = 500;
const APPLIES = 10;

let etcd: EtcdProcess;
let security: ControlPlaneSecurity;
let cp: ControlPlaneProcess;
const planes: SimulatedDataPlane[] = [];

before(async () => {
  etcd = await startEtcd();
  security = await makeControlPlaneSecurity();
  cp = await startControlPlane({ etcd: etcd.endpoint, security, prefix: '/scale/', leaseTtl: 5 });
});

after(async () => {
  for (const p of planes) p.close();
  await cp?.stop();
  await etcd?.remove();
  await security?.remove();
});

function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:')) ?? '';
  return Number(/(\d+)/.exec(line)?.[1] ?? 0) / 1024;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

const docFor = (i: number): string =>
  `pools:\n  app:\n    server_host: 127.0.0.1\n    users:\n      - username: u\n        password: p\n        pool_size: ${i + 1}\n`;

test(`${NODES} data-plane streams: apply-to-all-acked p50/p99 over ${APPLIES} applies, RSS`, { timeout: 300_000 }, async () => {
  await eventually(() => adminCall(cp.adminClient(), 'status', {}), (s) => s.leader === cp.address, 15_000, 'leader');
  const rssIdle = rssMiB(cp.pid);
  const credentials = cp.channelCredentials(security.dataPlane);
  for (let i = 0; i < NODES; i++) {
    // Own subchannel pool: one TLS connection per simulated node, like real data planes.
    const client = new DiscoveryClient(cp.address, credentials, { 'grpc.use_local_subchannel_pool': 1 });
    const p = new SimulatedDataPlane(client, { nodeId: `sim-${String(i).padStart(3, '0')}`, labels: { dc: i % 2 ? 'a' : 'b' } });
    planes.push(p);
    p.connect();
  }
  const st = await eventually(() => adminCall(cp.adminClient(), 'nodes', {}), (r) => r.nodes.filter((n) => n.connected).length === NODES, 60_000, 'all nodes registered');
  assert.equal(st.nodes.length, NODES);

  const latencies: number[] = [];
  let last = 0;
  for (let i = 0; i < APPLIES; i++) {
    const t0 = Date.now();
    const res = await adminCall(cp.adminClient(), 'apply', { documentYaml: docFor(i) });
    assert.equal(res.changed, true);
    await Promise.all(planes.map((p) => p.waitForConfig(res.generation, 30_000)));
    const lastAck = Math.max(...planes.map((p) => p.ackedAt.get(res.generation) ?? Infinity));
    latencies.push(lastAck - t0);
    last = res.generation;
  }
  const rssLoaded = rssMiB(cp.pid);
  const status = await eventually(
    () => adminCall(cp.adminClient(), 'status', {}),
    (s) => s.nodes.length === NODES && s.nodes.every((n) => n.connected && n.ackedConfigVersion === last),
    30_000,
    'every node shows the last generation acked',
  );
  assert.equal(status.generation, last);
  for (const p of planes) assert.equal(p.lastSecrets?.users[0]?.password, 'p');

  const sorted = [...latencies].sort((a, b) => a - b);
  const p50 = percentile(sorted, 50);
  const p99 = percentile(sorted, 99);
  console.log(
    `scale: ${NODES} streams, ${APPLIES} applies: apply-to-all-acked p50 ${p50} ms, p99 ${p99} ms (all: ${latencies.join(', ')}); control-plane RSS ${rssIdle.toFixed(0)} MiB idle, ${rssLoaded.toFixed(0)} MiB with ${NODES} streams`,
  );
  assert.ok(p99 < 10_000, `p99 ${p99} ms`);
  assert.ok(rssLoaded < 1024, `RSS ${rssLoaded} MiB`);
});
