/**
 * Kill the leader replica during an apply storm: a new leader within the lease TTL, and every
 * acknowledged apply's generation in history exactly once with no gaps.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { status, type ServiceError } from '@grpc/grpc-js';
import type { AdminClient } from '@doorman/proto/api';
import { startEtcd, type EtcdProcess } from '../harness/etcd.js';
import { adminCall, makeControlPlaneSecurity, startControlPlane, type ControlPlaneProcess, type ControlPlaneSecurity } from '../harness/controlplane.js';

const LEASE_TTL_S = 2;
const CLIENTS = 4;
const APPLIES_PER_CLIENT = 50;
const KILL_AFTER = 60;

let etcd: EtcdProcess;
let security: ControlPlaneSecurity;
const replicas: ControlPlaneProcess[] = [];

before(async () => {
  etcd = await startEtcd();
  security = await makeControlPlaneSecurity();
  for (const id of ['r1', 'r2', 'r3']) {
    replicas.push(await startControlPlane({ etcd: etcd.endpoint, security, prefix: '/storm/', leaseTtl: LEASE_TTL_S, history: 1000, replicaId: id }));
  }
});

after(async () => {
  for (const r of replicas) await r.kill();
  await etcd?.remove();
  await security?.remove();
});

const docFor = (tag: string): string =>
  `general:\n  application_name: "${tag}"\npools:\n  app:\n    server_host: 127.0.0.1\n    users:\n      - username: u\n        password: p\n`;

const clients = new Map<string, AdminClient>();
function clientFor(address: string): AdminClient {
  let c = clients.get(address);
  if (!c) {
    const r = replicas.find((x) => x.address === address);
    if (!r) throw new Error(`unknown replica ${address}`);
    c = r.adminClient();
    clients.set(address, c);
  }
  return c;
}

function alive(): ControlPlaneProcess[] {
  return replicas.filter((r) => r.running);
}

/** Looks the author up in history on any live replica (after an ambiguous failure). */
async function findInHistory(author: string): Promise<number | null> {
  for (const r of alive()) {
    try {
      const h = await adminCall(clientFor(r.address), 'history', {}, undefined, 5_000);
      return h.entries.find((e) => e.author === author)?.generation ?? null;
    } catch {
      // Try the next replica.
    }
  }
  return null;
}

test('leader killed during 200 applies from 4 clients: new leader within the TTL, no generation lost or duplicated', { timeout: 240_000 }, async () => {
  const acked = new Map<string, number>();
  let retries = 0;
  let target = replicas[0]!.address;

  async function applyOnce(author: string): Promise<number> {
    let last = '';
    for (let attempt = 0; attempt < 200; attempt++) {
      if (!alive().some((r) => r.address === target)) target = alive()[attempt % alive().length]!.address;
      try {
        const res = await adminCall(clientFor(target), 'apply', { documentYaml: docFor(author), author }, undefined, 10_000);
        assert.equal(res.changed, true);
        return res.generation;
      } catch (err) {
        const e = err as ServiceError;
        retries++;
        last = `${e.code} ${e.details} (to ${target})`;
        if (e.code === status.FAILED_PRECONDITION) {
          const hint = e.metadata?.get('doorman-leader')[0];
          if (typeof hint === 'string' && alive().some((r) => r.address === hint)) target = hint;
          else {
            // The hint names the dead leader until its lease lapses.
            target = alive()[attempt % alive().length]!.address;
            await sleep(100);
          }
          continue;
        }
        if (e.code !== status.UNAVAILABLE && e.code !== status.DEADLINE_EXCEEDED && e.code !== status.CANCELLED) throw err;
        // Ambiguous: the apply may have committed before the replica died.
        const found = await findInHistory(author);
        if (found !== null) return found;
        target = alive()[attempt % alive().length]!.address;
        await sleep(100);
      }
    }
    throw new Error(`${author}: no success after 200 attempts; last: ${last}`);
  }

  let killedAt = 0;
  let killed: ControlPlaneProcess | null = null;
  const killer = (async () => {
    while (acked.size < KILL_AFTER) await sleep(20);
    const st = await adminCall(clientFor(alive()[0]!.address), 'status', {});
    killed = replicas.find((r) => r.address === st.leader) ?? null;
    assert.ok(killed, 'a leader to kill');
    killedAt = Date.now();
    await killed.kill();
  })();

  const started = Date.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, c) => {
      for (let i = 0; i < APPLIES_PER_CLIENT; i++) {
        const author = `c${c}-${i}`;
        acked.set(author, await applyOnce(author));
      }
    }),
  );
  await killer;
  const stormMs = Date.now() - started;

  // Time to a new leader, seen from a survivor.
  const survivors = alive();
  let newLeaderAfterMs = -1;
  const st = await adminCall(clientFor(survivors[0]!.address), 'status', {});
  assert.notEqual(st.leader, (killed as ControlPlaneProcess | null)?.address);
  const firstNewLeaderCommit = survivors
    .flatMap((r) => r.jsonLogs())
    .filter((l) => l.msg === 'elected leader' && typeof l.time === 'number' && l.time >= killedAt)
    .map((l) => l.time as number)
    .sort((a, b) => a - b)[0];
  assert.ok(firstNewLeaderCommit !== undefined, 'a survivor logged "elected leader" after the kill');
  newLeaderAfterMs = firstNewLeaderCommit - killedAt;

  const history = await adminCall(clientFor(survivors[0]!.address), 'history', {});
  const entries = [...history.entries].sort((a, b) => a.generation - b.generation);
  const total = CLIENTS * APPLIES_PER_CLIENT;
  assert.equal(entries.length, total, 'one generation per apply');
  for (let i = 1; i < entries.length; i++) assert.equal(entries[i]!.generation, entries[i - 1]!.generation + 1, 'generations are consecutive');
  const byAuthor = new Map(entries.map((e) => [e.author, e.generation]));
  assert.equal(byAuthor.size, total, 'no author twice');
  for (const [author, generation] of acked) assert.equal(byAuthor.get(author), generation, `${author} acknowledged as ${generation}`);

  console.log(
    `failover: ${total} applies in ${stormMs} ms by ${CLIENTS} clients, ${retries} retries; new leader ${newLeaderAfterMs} ms after SIGKILL (lease TTL ${LEASE_TTL_S} s)`,
  );
  assert.ok(newLeaderAfterMs <= LEASE_TTL_S * 1000 + 1500, `new leader after ${newLeaderAfterMs} ms`);
});
