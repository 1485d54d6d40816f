/** Admin API over TLS against a real etcd: apply/get/history/rollback/delete, validation, conflicts, auth, followers, streams. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { status, type ServiceError } from '@grpc/grpc-js';
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

let etcd: EtcdProcess;
let security: ControlPlaneSecurity;
const replicas: ControlPlaneProcess[] = [];

before(async () => {
  etcd = await startEtcd();
  security = await makeControlPlaneSecurity();
  replicas.push(await startControlPlane({ etcd: etcd.endpoint, security, prefix: '/admin-test/', leaseTtl: 2, replicaId: 'r1', history: 4 }));
  replicas.push(await startControlPlane({ etcd: etcd.endpoint, security, prefix: '/admin-test/', leaseTtl: 2, replicaId: 'r2', history: 4 }));
});

after(async () => {
  for (const r of replicas) await r.stop();
  await etcd?.remove();
  await security?.remove();
});

const doc = (poolSize: number, password = 'alice-secret'): string => `
general:
  port: 6432
  admin_password: "admin-secret"
pools:
  app:
    server_host: 127.0.0.1
    server_port: 5432
    users:
      - username: alice
        password: "${password}"
        pool_size: ${poolSize}
`;

async function leaderAndFollower(): Promise<{ leader: ControlPlaneProcess; follower: ControlPlaneProcess }> {
  const st = await eventually(
    () => adminCall(replicas[0]!.adminClient(), 'status', {}, replicas[0]!.adminMetadata()),
    (s) => s.leader !== '',
    10_000,
    'a leader',
  );
  const leader = replicas.find((r) => r.address === st.leader);
  const follower = replicas.find((r) => r.address !== st.leader);
  assert.ok(leader && follower, `leader ${st.leader} is one of the replicas`);
  return { leader, follower };
}

function code(err: unknown): number | undefined {
  return (err as ServiceError).code;
}

test('apply, get, history, rollback and delete over TLS; secrets never shown', { timeout: 60_000 }, async () => {
  const { leader } = await leaderAndFollower();
  const admin = leader.adminClient({ withClientCert: false });
  const md = leader.adminMetadata();

  const first = await adminCall(admin, 'apply', { documentYaml: doc(5), author: 'tester' }, md);
  assert.equal(first.changed, true);
  const g1 = first.generation;
  const dry = await adminCall(admin, 'apply', { documentYaml: doc(7), dryRun: true }, md);
  assert.deepEqual([dry.dryRun, dry.generation, dry.changed], [true, g1, true]);
  assert.deepEqual(dry.diff.map((d) => [d.change, d.path, d.before, d.after]), [['changed', 'pools.app.users.alice.pool_size', '5', '7']]);
  const second = await adminCall(admin, 'apply', { documentYaml: doc(7, 'rotated'), author: 'tester' }, md);
  assert.equal(second.generation, g1 + 1);
  assert.deepEqual(second.diff.map((d) => d.path), ['pools.app.users.alice.pool_size', 'secrets.app.alice.password']);
  const noop = await adminCall(admin, 'apply', { documentYaml: doc(7, 'rotated') }, md);
  assert.deepEqual([noop.changed, noop.generation], [false, g1 + 1]);

  const config = await adminCall(admin, 'get', { kind: 'config' }, md);
  assert.equal(config.generation, g1 + 1);
  assert.ok(!config.json.includes('rotated') && !config.json.includes('admin-secret'), config.json);
  const shown = JSON.parse(config.json) as { general: Record<string, unknown>; pools: { app: { users: Record<string, unknown>[] } } };
  assert.equal(shown.general.admin_password, '[set]');
  assert.deepEqual(shown.pools.app.users[0], { username: 'alice', password: '[set]', pool_size: 7, server_password: '[unset]' });
  const users = JSON.parse((await adminCall(admin, 'get', { kind: 'users' }, md)).json) as Record<string, unknown>[];
  assert.deepEqual(users.map((u) => [u.database, u.username, u.pool_size, u.password]), [['app', 'alice', 7, '[set]']]);

  const back = await adminCall(admin, 'rollback', { toGeneration: g1, author: 'tester' }, md);
  assert.equal(back.generation, g1 + 2);
  const history = await adminCall(admin, 'history', { limit: 3 }, md);
  assert.deepEqual(history.entries.map((e) => [e.generation, e.author]), [[g1 + 2, 'tester'], [g1 + 1, 'tester'], [g1, 'tester']]);
  assert.match(history.entries[0]!.summary, /^rollback to \d+: 0 added, 0 removed, 2 changed$/);
  const rolled = JSON.parse((await adminCall(admin, 'get', { kind: 'users' }, md)).json) as Record<string, unknown>[];
  assert.equal(rolled[0]!.pool_size, 5);

  const twoPools = `${doc(5)}  other:\n    server_host: 127.0.0.1\n    users:\n      - username: bob\n        password: b\n`;
  const withOther = await adminCall(admin, 'apply', { documentYaml: twoPools }, md);
  const deleted = await adminCall(admin, 'delete', { database: 'other', author: 'tester' }, md);
  assert.equal(deleted.generation, withOther.generation + 1);
  const pools = JSON.parse((await adminCall(admin, 'get', { kind: 'pools' }, md)).json) as { name: string }[];
  assert.deepEqual(pools.map((p) => p.name), ['app']);
  await assert.rejects(adminCall(admin, 'delete', { database: 'nope' }, md), (e) => code(e) === status.NOT_FOUND);

  // History keeps the last 4 (--history 4); older generations are gone, so is rolling back to them.
  const all = await adminCall(admin, 'history', {}, md);
  assert.deepEqual(all.entries.map((e) => e.generation), [deleted.generation, deleted.generation - 1, deleted.generation - 2, deleted.generation - 3]);
  await assert.rejects(adminCall(admin, 'rollback', { toGeneration: g1 }, md), (e) => code(e) === status.NOT_FOUND);
});

test('a bad config is rejected with field paths; a stale expected_generation is ABORTED', { timeout: 30_000 }, async () => {
  const { leader } = await leaderAndFollower();
  const admin = leader.adminClient();
  const md = leader.adminMetadata();
  await assert.rejects(adminCall(admin, 'apply', { documentYaml: doc(0) }, md), (e) => {
    assert.equal(code(e), status.INVALID_ARGUMENT);
    assert.match((e as ServiceError).details, /^pools\.app\.users\[0\]\.pool_size: must be /);
    return true;
  });
  const current = await adminCall(admin, 'status', {}, md);
  await assert.rejects(adminCall(admin, 'apply', { documentYaml: doc(11), expectedGeneration: current.generation - 1 }, md), (e) => {
    assert.equal(code(e), status.ABORTED);
    assert.match((e as ServiceError).details, new RegExp(`current generation is ${current.generation}`));
    return true;
  });
  const ok = await adminCall(admin, 'apply', { documentYaml: doc(11), expectedGeneration: current.generation }, md);
  assert.equal(ok.generation, current.generation + 1);
});

test('admin calls need the token or a client certificate; followers point at the leader', { timeout: 30_000 }, async () => {
  const { leader, follower } = await leaderAndFollower();
  await assert.rejects(adminCall(leader.adminClient({ withClientCert: false }), 'status', {}), (e) => code(e) === status.UNAUTHENTICATED);
  const byCert = await adminCall(leader.adminClient(), 'status', {});
  assert.equal(byCert.leader, leader.address);
  await assert.rejects(adminCall(follower.adminClient(), 'apply', { documentYaml: doc(3) }, follower.adminMetadata()), (e) => {
    assert.equal(code(e), status.FAILED_PRECONDITION);
    assert.match((e as ServiceError).details, new RegExp(`the leader is ${leader.address.replace(/\./g, '\\.')}`));
    assert.deepEqual((e as ServiceError).metadata.get('doorman-leader'), [leader.address]);
    return true;
  });
  // Reads work on a follower.
  const history = await adminCall(follower.adminClient(), 'history', { limit: 1 });
  assert.equal(history.entries.length, 1);
});

test('data-plane streams: TLS client cert required; config+secrets pushed, ACKs and NACKs visible on every replica', { timeout: 60_000 }, async () => {
  const { leader, follower } = await leaderAndFollower();
  // Without a client certificate the stream is refused.
  const anon = new SimulatedDataPlane(new DiscoveryClient(follower.address, follower.channelCredentials(null)), { nodeId: 'anon' });
  anon.connect();
  await anon.waitFor(() => anon.ended !== null, 10_000, 'refusal');
  assert.equal(anon.ended?.code, status.UNAUTHENTICATED);
  anon.close();

  const good = new SimulatedDataPlane(follower.discoveryClient(), { nodeId: 'dp-good', labels: { dc: 'a' } });
  const bad = new SimulatedDataPlane(follower.discoveryClient(), { nodeId: 'dp-bad', labels: { dc: 'b' }, refuse: (p) => (p.kind === 'config' && p.body.includes('"pool_size":13') ? 'general.tls_certificate: cannot read "/nope.crt"' : null) });
  good.connect();
  bad.connect();
  try {
    const st0 = await adminCall(leader.adminClient(), 'status', {});
    await good.waitForConfig(st0.generation, 10_000);
    await bad.waitForConfig(st0.generation, 10_000);
    assert.equal(good.lastSecrets?.users[0]?.password, 'alice-secret');
    assert.ok(!good.lastConfig.includes('alice-secret'), 'the config push carries no secret');
    const applied = await adminCall(leader.adminClient(), 'apply', { documentYaml: doc(13) }, leader.adminMetadata());
    await good.waitForConfig(applied.generation, 10_000);
    const st = await eventually(
      () => adminCall(leader.adminClient(), 'status', {}),
      (s) => s.nodes.find((n) => n.node?.nodeId === 'dp-bad')?.nackedVersion === applied.generation && s.nodes.find((n) => n.node?.nodeId === 'dp-good')?.ackedConfigVersion === applied.generation,
      10_000,
      'ACK and NACK recorded',
    );
    const badStatus = st.nodes.find((n) => n.node?.nodeId === 'dp-bad');
    assert.deepEqual([badStatus?.connected, badStatus?.ackedConfigVersion, badStatus?.nackError, badStatus?.attachedTo], [true, st0.generation, 'general.tls_certificate: cannot read "/nope.crt"', follower.address]);
    const nodes = await adminCall(follower.adminClient(), 'nodes', { labels: { dc: 'a' } });
    assert.deepEqual(nodes.nodes.map((n) => n.node?.nodeId), ['dp-good']);
    good.close();
    await eventually(
      () => adminCall(leader.adminClient(), 'nodes', {}),
      (r) => r.nodes.find((n) => n.node?.nodeId === 'dp-good')?.connected === false,
      10_000,
      'dp-good disconnected',
    );
  } finally {
    good.close();
    bad.close();
  }
});
