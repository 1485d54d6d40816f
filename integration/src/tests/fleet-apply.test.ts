/**
 * The fleet end to end: etcd, two control-plane replicas (TLS, token), two data planes in agent mode in
 * front of PostgreSQL. doormanctl apply reaches both data planes (apply-to-all-acked latency measured); a
 * config a data plane cannot load is NACKed, shown by `doormanctl status`, and the old one keeps serving;
 * doormanctl's errors and exit codes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Metadata } from '@grpc/grpc-js';
import type { AdminClient, ApplyResponse, StatusResponse } from '@doorman/proto/api';
import {
  SCRAM_USER,
  connectPg,
  eventually,
  freePort,
  makeTempDir,
  one,
  startPostgres,
  type PgCluster,
  type TempDir,
} from '../harness/index.js';
import { makeControlPlaneSecurity, startControlPlane, type ControlPlaneProcess, type ControlPlaneSecurity } from '../harness/controlplane.js';
import { startEtcd, type EtcdProcess } from '../harness/etcd.js';
import { doormanctl, fleetPoolsYaml, startAgentDataPlane, type AgentDataPlane, type DoormanctlTarget } from '../harness/fleet.js';

const SUITE_TIMEOUT_MS = 300_000;

function unary<Req, Res>(
  fn: (req: Req, md: Metadata, cb: (err: Error | null, res: Res) => void) => unknown,
  req: Req,
  md: Metadata,
): Promise<Res> {
  return new Promise((resolve, reject) => fn(req, md, (err, res) => (err ? reject(err) : resolve(res))));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

describe('fleet: apply reaches every data plane; NACKs are visible; doormanctl', { timeout: SUITE_TIMEOUT_MS }, () => {
  let pg: PgCluster;
  let etcd: EtcdProcess;
  let security: ControlPlaneSecurity;
  let work: TempDir;
  const cps: ControlPlaneProcess[] = [];
  const dps: AgentDataPlane[] = [];
  let admin: AdminClient;
  let target: DoormanctlTarget;

  const status = (): Promise<StatusResponse> => unary(admin.status.bind(admin), {}, cps[0].adminMetadata());
  const apply = (documentYaml: string): Promise<ApplyResponse> =>
    unary(admin.apply.bind(admin), { documentYaml, dryRun: false, expectedGeneration: 0, author: 'fleet-test' }, cps[0].adminMetadata());
  const ackedBy = (s: StatusResponse, gen: number): string[] =>
    s.nodes.filter((n) => n.connected && n.ackedConfigVersion === gen).map((n) => n.node?.nodeId ?? '?').sort();
  const docFile = async (name: string, text: string): Promise<string> => {
    const file = path.join(work.path, name);
    await writeFile(file, text);
    return file;
  };
  const query = async (dp: AgentDataPlane): Promise<number> => {
    const c = await connectPg(dp.url(SCRAM_USER, 'app'));
    try {
      return (await one<{ n: number }>(c, 'select 41 + 1 as n')).n;
    } finally {
      await c.end();
    }
  };

  before(async () => {
    [pg, etcd, security, work] = await Promise.all([
      startPostgres(),
      startEtcd(),
      makeControlPlaneSecurity(),
      makeTempDir('doorman-fleet-apply', { forServiceUser: false }),
    ]);
    for (const id of ['cp-a', 'cp-b']) cps.push(await startControlPlane({ etcd: etcd.endpoint, security, replicaId: id, leaseTtl: 3 }));
    const addresses = cps.map((c) => c.address);
    dps.push(await startAgentDataPlane({ nodeId: 'dp-1', controlPlanes: addresses, security, labels: { cluster: 'test' } }));
    dps.push(await startAgentDataPlane({ nodeId: 'dp-2', controlPlanes: [...addresses].reverse(), security, labels: { cluster: 'test' } }));
    admin = cps[0].adminClient();
    target = { servers: addresses, security };
    await eventually(status, (s) => s.nodes.filter((n) => n.connected).length === 2, 20_000, 'both data planes registered');
  });

  after(async () => {
    admin?.close();
    await Promise.all(dps.map((d) => d.remove()));
    await Promise.all(cps.map((c) => c.stop()));
    await etcd?.remove();
    await pg?.stop();
    await security?.remove();
    await work?.remove();
  });

  test('doormanctl apply -> both data planes serve the pool; apply-to-all-acked latency', async () => {
    const file = await docFile('pools.yaml', fleetPoolsYaml(pg, { users: [SCRAM_USER], poolSize: 4 }));
    const r = await doormanctl(target, ['apply', '-f', file]);
    assert.equal(r.code, 0, r.stderr);
    const gen = Number(/^applied generation (\d+) \(/m.exec(r.stdout)?.[1]);
    assert.ok(gen >= 1, r.stdout);
    assert.match(r.stdout, /^\+ pools: \{"app":/m);
    assert.match(r.stdout, /^\+ secrets\.app\.scram_user\.password: \[set\]$/m);
    await eventually(status, (s) => ackedBy(s, gen).length === 2, 20_000, `both nodes ACK generation ${gen}`);
    await Promise.all(dps.map((d) => d.serving()));
    assert.deepEqual(await Promise.all(dps.map(query)), [42, 42]);

    // Latency: from the Apply call to the last data plane's ACK, over several applies.
    const samples: number[] = [];
    for (let i = 0; i < 8; i++) {
      const doc = fleetPoolsYaml(pg, { users: [SCRAM_USER], poolSize: 5 + i });
      const started = performance.now();
      const res = await apply(doc);
      assert.equal(res.changed, true);
      // Polled every 10 ms (not eventually()'s 100 ms) so the figure is not the poll interval.
      while (ackedBy(await status(), res.generation).length < 2) {
        assert.ok(performance.now() - started < 20_000, `ACK of ${res.generation} within 20 s`);
        await sleep(10);
      }
      samples.push(performance.now() - started);
    }
    samples.sort((a, b) => a - b);
    console.log(
      `fleet apply-to-all-acked (2 data planes, 8 applies, status polled every 10 ms): ` +
        `p50 ${percentile(samples, 50).toFixed(0)} ms, max ${samples[samples.length - 1].toFixed(0)} ms`,
    );
    assert.deepEqual(await Promise.all(dps.map(query)), [42, 42]);
  });

  test('a config the data planes cannot load is NACKed, shown in status, and the old one keeps serving', async () => {
    const before = await status();
    const good = before.generation;
    const missing = path.join(work.path, 'no-such-dir', 'server.crt');
    const bad = fleetPoolsYaml(pg, { users: [SCRAM_USER], poolSize: 3, general: { tls_certificate: missing, tls_private_key: missing } });
    const r = await doormanctl(target, ['apply', '-f', await docFile('bad-tls.yaml', bad)]);
    // The control plane accepts it: the files live on the data planes.
    assert.equal(r.code, 0, r.stderr);
    const badGen = good + 1;
    const s = await eventually(
      status,
      (x) => x.nodes.filter((n) => n.nackedVersion === badGen).length === 2,
      20_000,
      'both nodes NACK the unloadable config',
    );
    for (const n of s.nodes) {
      assert.equal(n.ackedConfigVersion, good);
      assert.match(n.nackError, new RegExp(`^general\\.tls_certificate: cannot read "${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}": ENOENT$`, 'm'));
    }
    const shown = await doormanctl(target, ['status']);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`^dp-1 +yes +${good} +\\d+ +v${badGen} `, 'm'));
    assert.match(shown.stdout, new RegExp(`^dp-2 refused version ${badGen}:\\n  general\\.tls_certificate: cannot read`, 'm'));
    assert.deepEqual(await Promise.all(dps.map(query)), [42, 42]);

    // A fixed config is the next generation and is ACKed again.
    const fixed = await apply(fleetPoolsYaml(pg, { users: [SCRAM_USER], poolSize: 3 }));
    await eventually(status, (x) => ackedBy(x, fixed.generation).length === 2, 20_000, 'the fixed config is ACKed');
    const after = await status();
    assert.deepEqual(after.nodes.map((n) => n.nackError), ['', '']);
  });

  test('doormanctl: validation errors with field paths (exit 2), diff exit codes, leader hint, unreachable (exit 3)', async () => {
    const invalid = fleetPoolsYaml(pg, { users: [SCRAM_USER], poolSize: -1, general: { port: 'x' } });
    const bad = await doormanctl(target, ['apply', '-f', await docFile('invalid.yaml', invalid)]);
    assert.equal(bad.code, 2, bad.stdout + bad.stderr);
    assert.match(bad.stderr, /^doormanctl: apply: the document is invalid:$/m);
    assert.match(bad.stderr, /^general\.port: /m);
    assert.match(bad.stderr, /^pools\.app\.users\[0\]\.pool_size: /m);
    const syntax = await doormanctl(target, ['apply', '-f', await docFile('syntax.yaml', 'pools: [\n')]);
    assert.equal(syntax.code, 2);
    assert.match(syntax.stderr, /^\(yaml\): /m);

    const current = await status();
    const same = fleetPoolsYaml(pg, { users: [SCRAM_USER], poolSize: 3 });
    const d0 = await doormanctl(target, ['diff', '-f', await docFile('same.yaml', same)]);
    assert.equal(d0.code, 0, d0.stdout + d0.stderr);
    assert.equal(d0.stdout, `no changes against generation ${current.generation}\n`);
    const d1 = await doormanctl(target, ['diff', '-f', await docFile('bigger.yaml', fleetPoolsYaml(pg, { users: [SCRAM_USER], poolSize: 9 }))]);
    assert.equal(d1.code, 1, d1.stdout + d1.stderr);
    assert.match(d1.stdout, /^~ pools\.app\.users\.scram_user\.pool_size: 3 -> 9$/m);

    // Writes sent to the follower first still land, on the leader.
    const follower = cps.find((c) => c.address !== current.leader);
    assert.ok(follower, `a follower besides leader ${current.leader}`);
    const viaFollower = await doormanctl({ servers: [follower.address], security }, ['apply', '-f', await docFile('bigger2.yaml', fleetPoolsYaml(pg, { users: [SCRAM_USER], poolSize: 9 }))]);
    assert.equal(viaFollower.code, 0, viaFollower.stderr);
    assert.match(viaFollower.stdout, new RegExp(`^applied generation ${current.generation + 1} `, 'm'));

    const dead = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
    const down = await doormanctl({ servers: dead, security }, ['status']);
    assert.equal(down.code, 3);
    assert.equal(down.stderr, `doormanctl: cannot reach the control plane; tried ${dead[0]} (ECONNREFUSED), ${dead[1]} (ECONNREFUSED)\n`);
  });
});
