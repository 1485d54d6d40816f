/**
 * The fleet keeps serving when what is behind it fails: etcd stopped for 30 s while a client runs queries
 * through a data plane (none may fail; a later apply is caught up), and a data plane restarted while
 * every control plane is down serves its last-known-good config.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { AdminClient, ApplyResponse, StatusResponse } from '@doorman/proto/api';
import type { Metadata } from '@grpc/grpc-js';
import { SCRAM_USER, connectPg, eventually, one, startPostgres, type PgCluster } from '../harness/index.js';
import { makeControlPlaneSecurity, startControlPlane, type ControlPlaneProcess, type ControlPlaneSecurity } from '../harness/controlplane.js';
import { startEtcd, type EtcdProcess } from '../harness/etcd.js';
import { fleetPoolsYaml, startAgentDataPlane, type AgentDataPlane } from '../harness/fleet.js';

const SUITE_TIMEOUT_MS = 300_000;
const ETCD_DOWN_MS = 30_000;

function unary<Req, Res>(
  fn: (req: Req, md: Metadata, cb: (err: Error | null, res: Res) => void) => unknown,
  req: Req,
  md: Metadata,
): Promise<Res> {
  return new Promise((resolve, reject) => fn(req, md, (err, res) => (err ? reject(err) : resolve(res))));
}

/** Runs `select n` on one connection and opens a fresh connection every 20 queries, until stopped. */
class QueryLoop {
  ok = 0;
  readonly failures: string[] = [];
  private running = true;
  readonly done: Promise<void>;

  constructor(private readonly url: string) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    let client: pg.Client | null = null;
    let i = 0;
    while (this.running) {
      try {
        if (client === null || i % 20 === 0) {
          await client?.end();
          client = await connectPg(this.url);
        }
        const r: { n: number } = await one<{ n: number }>(client, 'select $1::int as n', [i]);
        assert.equal(r.n, i);
        this.ok++;
      } catch (err) {
        this.failures.push(`query ${i}: ${(err as Error).message}`);
        client = null;
      }
      i++;
      await sleep(25);
    }
    await client?.end();
  }

  stop(): Promise<void> {
    this.running = false;
    return this.done;
  }
}

describe('fleet: serving survives etcd and control-plane outages', { timeout: SUITE_TIMEOUT_MS }, () => {
  let pg: PgCluster;
  let etcd: EtcdProcess;
  let security: ControlPlaneSecurity;
  const cps: ControlPlaneProcess[] = [];
  const dps: AgentDataPlane[] = [];
  let admin: AdminClient;
  let second: AdminClient;

  const status = (): Promise<StatusResponse> => unary(admin.status.bind(admin), {}, cps[0].adminMetadata());
  /** Applies through whichever replica leads (after an etcd outage the leader may have moved). */
  const apply = async (poolSize: number): Promise<ApplyResponse> => {
    const request = { documentYaml: fleetPoolsYaml(pg, { users: [SCRAM_USER], poolSize }), dryRun: false, expectedGeneration: 0, author: 'outage-test' };
    let last: unknown;
    for (const [i, client] of [admin, second].entries()) {
      try {
        return await unary(client.apply.bind(client), request, cps[i].adminMetadata());
      } catch (err) {
        last = err;
      }
    }
    throw last;
  };
  const ackedBy = (s: StatusResponse, gen: number): number => s.nodes.filter((n) => n.connected && n.ackedConfigVersion === gen).length;

  before(async () => {
    [pg, etcd, security] = await Promise.all([startPostgres(), startEtcd(), makeControlPlaneSecurity()]);
    for (const id of ['cp-a', 'cp-b']) cps.push(await startControlPlane({ etcd: etcd.endpoint, security, replicaId: id, leaseTtl: 3 }));
    const addresses = cps.map((c) => c.address);
    for (const id of ['dp-1', 'dp-2']) dps.push(await startAgentDataPlane({ nodeId: id, controlPlanes: addresses, security, initialWait: '2s' }));
    admin = cps[0].adminClient();
    second = cps[1].adminClient();
    // The leader is elected asynchronously; cp-a forwards nothing, so wait until it leads or answers.
    const first = await eventually(
      () => apply(4).catch((err: Error) => err),
      (r) => !(r instanceof Error),
      20_000,
      'first apply',
    );
    await eventually(status, (s) => ackedBy(s, (first as ApplyResponse).generation) === 2, 20_000, 'both data planes ACK');
    await Promise.all(dps.map((d) => d.serving()));
  });

  after(async () => {
    admin?.close();
    second?.close();
    await Promise.all(dps.map((d) => d.remove()));
    await Promise.all(cps.map((c) => c.stop()));
    await etcd?.remove();
    await pg?.stop();
    await security?.remove();
  });

  test(`etcd stopped for ${ETCD_DOWN_MS / 1000} s: 0 failed queries through a data plane, and a later apply is caught up`, async () => {
    const loop = new QueryLoop(dps[0].url(SCRAM_USER, 'app'));
    let servedWhileDown = 0;
    let caughtUp = 0;
    try {
      await sleep(1_000);
      await etcd.stop();
      await sleep(ETCD_DOWN_MS);
      servedWhileDown = loop.ok;
      assert.deepEqual(cps.filter((c) => !c.running).map((c) => c.output(20)), [], 'control planes still running');
      await etcd.restart();
      const restarted = performance.now();
      // Writes fail until a leader is elected again; then the next apply reaches both data planes.
      const res = await eventually(() => apply(7).catch((err: Error) => err), (r) => !(r instanceof Error), 30_000, 'apply after etcd is back');
      const gen = (res as ApplyResponse).generation;
      await eventually(status, (s) => ackedBy(s, gen) === 2, 20_000, `both data planes ACK ${gen}`);
      caughtUp = performance.now() - restarted;
      await sleep(500);
    } catch (err) {
      // The processes' logs explain a failed recovery; they die with the suite, so keep them.
      const file = path.join(os.tmpdir(), `fleet-outage-${process.pid}.log`);
      const sections = [...cps.map((c, i) => [`control plane ${i} (${c.address})`, c.logs()] as const), ...dps.map((d) => [`data plane ${d.nodeId}`, d.process.lines()] as const)];
      writeFileSync(file, sections.map(([name, lines]) => `==== ${name}\n${lines.join('\n')}\n`).join(''));
      (err as Error).message += ` (process logs in ${file})`;
      throw err;
    } finally {
      await loop.stop();
      console.log(`fleet etcd outage: ${loop.ok} queries through dp-1, ${loop.failures.length} failed, ${servedWhileDown} done by the end of the outage`);
    }
    console.log(
      `fleet etcd outage: ${loop.ok} queries, ${loop.failures.length} failed (${servedWhileDown} by the end of the ${ETCD_DOWN_MS / 1000} s outage); ` +
        `etcd restart -> apply acked by both data planes in ${caughtUp.toFixed(0)} ms`,
    );
    assert.deepEqual(loop.failures, []);
    // A report the agent cannot serialise ends its stream with INTERNAL (13) on every reconnect.
    const internal = dps.flatMap((d) => d.logs('control-plane stream closed; still serving the current config').filter((r) => r.code === 13));
    assert.deepEqual(internal, []);
    assert.ok(servedWhileDown > 300, `queries kept running during the outage (${servedWhileDown})`);
  });

  test('a data plane restarted with every control plane down serves its last-known-good config', async () => {
    const old = dps[0];
    // The version it runs, from its own log: the control planes may be gone already.
    const acks = old.logs('config applied (ACK)');
    const gen = acks[acks.length - 1].version;
    await old.stop();
    await Promise.all(cps.map((c) => c.stop()));
    const started = performance.now();
    const again = await startAgentDataPlane({ ...old.options, stateDir: old.stateDir, port: old.port });
    dps.push(again);
    await again.waitForLog('serving the last-known-good config; no control plane answered in time', 15_000);
    const servingAfter = performance.now() - started;
    const lkg = again.logs('serving the last-known-good config; no control plane answered in time');
    assert.equal(lkg.length, 1);
    assert.equal(lkg[0].configVersion, gen);
    const c = await connectPg(again.url(SCRAM_USER, 'app'));
    try {
      assert.equal((await one<{ n: number }>(c, 'select 5 as n')).n, 5);
    } finally {
      await c.end();
    }
    console.log(`fleet last-known-good boot with every control plane down: serving ${servingAfter.toFixed(0)} ms after start (--initial-wait 2s)`);
  });
});
