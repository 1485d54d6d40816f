import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import {
  DiscoveryService,
  ResourceType,
  type ControlPlaneMessage,
  type DataPlaneMessage,
  type PoolStats,
} from '@doorman/proto/api';
import pino from 'pino';
import type { LoadedConfig } from '../config/load.js';
import { Agent, AgentState } from './agent.js';
import type { AgentHost } from './host.js';
import type { AgentOptions } from './options.js';
import { StateStore } from './state-store.js';

const log = pino({ level: 'silent' });
const STEP_MS = 5_000;

type Stream = grpc.ServerDuplexStream<DataPlaneMessage, ControlPlaneMessage>;

/** A Discovery server in the test process: records what data planes send, pushes what the test says. */
class FakeControlPlane {
  readonly server = new grpc.Server();
  address = '';
  streams: Stream[] = [];
  readonly received: DataPlaneMessage[] = [];
  private waiters: (() => void)[] = [];

  async start(): Promise<void> {
    this.server.addService(DiscoveryService, {
      stream: (call: Stream) => {
        this.streams.push(call);
        call.on('data', (m: DataPlaneMessage) => {
          this.received.push(m);
          for (const w of this.waiters.splice(0)) w();
        });
        call.on('end', () => call.end());
        call.on('error', () => undefined);
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.address = `127.0.0.1:${port}`;
  }

  push(msg: ControlPlaneMessage): void {
    this.streams[this.streams.length - 1].write(msg);
  }

  /** The first received message (from index `from` on) matching `pick`. */
  async next<T>(pick: (m: DataPlaneMessage) => T | undefined, from = 0): Promise<T> {
    const deadline = Date.now() + STEP_MS;
    for (;;) {
      for (const m of this.received.slice(from)) {
        const v = pick(m);
        if (v !== undefined) return v;
      }
      if (Date.now() > deadline) throw new Error(`no matching message within ${STEP_MS} ms; got ${JSON.stringify(this.received)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 200);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  stop(): void {
    this.server.forceShutdown();
  }
}

class FakeHost implements AgentHost {
  readonly applied: LoadedConfig[] = [];
  refuse: string | null = null;
  pools: PoolStats[] = [];

  async apply(loaded: LoadedConfig): Promise<void> {
    if (this.refuse !== null) throw new Error(this.refuse);
    this.applied.push(loaded);
  }
  async poolStats(): Promise<PoolStats[]> {
    return this.pools;
  }
  clientCount(): number {
    return 3;
  }
  serverCount(): number {
    return 2;
  }
  workerCount(): number {
    return 1;
  }
  async drain(): Promise<void> {}
  async shutdown(): Promise<void> {}
}

function options(addresses: string[], stateDir: string | null = null): AgentOptions {
  return {
    addresses,
    listen: null,
    nodeId: 'dp-test',
    labels: { host: 'h1', cluster: 'c1' },
    stateDir,
    tls: null,
    initialWaitMs: 1000,
    statusIntervalMs: 60_000,
    backoffInitialMs: 50,
    backoffMaxMs: 200,
  };
}

function doc(poolSize: number, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    general: { host: '127.0.0.1', port: 6432, ...extra },
    pools: { app: { server_host: '127.0.0.1', server_port: 5432, users: [{ username: 'alice', pool_size: poolSize }] } },
  });
}

/** A port nothing listens on: bound then closed by the OS-picked listener. */
async function deadAddress(): Promise<string> {
  const s = new grpc.Server();
  const port = await new Promise<number>((resolve, reject) =>
    s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  s.forceShutdown();
  return `127.0.0.1:${port}`;
}

async function withAgent(
  fn: (ctx: { cp: FakeControlPlane; host: FakeHost; agent: Agent; dir: string }) => Promise<void>,
  addresses?: (live: string) => Promise<string[]>,
  host = new FakeHost(),
): Promise<void> {
  const cp = new FakeControlPlane();
  await cp.start();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'doorman-agent-test-'));
  const agent = new Agent(options(addresses ? await addresses(cp.address) : [cp.address], dir), log, host, new StateStore(dir));
  try {
    agent.start();
    await fn({ cp, host, agent, dir });
  } finally {
    agent.stop();
    cp.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('Hello names the node; a config push is applied, ACKed with its nonce and saved 0600', { timeout: 15_000 }, async () => {
  await withAgent(async ({ cp, host, agent, dir }) => {
    const hello = await cp.next((m) => m.hello);
    assert.equal(hello.node?.nodeId, 'dp-test');
    assert.deepEqual(hello.node?.labels, { host: 'h1', cluster: 'c1' });
    assert.equal(hello.configVersion, 0);
    const status = await cp.next((m) => m.status);
    assert.equal(status.clients, 3);
    assert.equal(status.servers, 2);

    cp.push({ config: { version: 4, nonce: 'n-4', documentJson: doc(7) } });
    const ack = await cp.next((m) => m.ack);
    assert.deepEqual(ack, { type: ResourceType.RESOURCE_TYPE_CONFIG, nonce: 'n-4', version: 4 });
    assert.equal(host.applied.length, 1);
    assert.equal(host.applied[0].config.pools.app.users[0].poolSize, 7);
    assert.deepEqual(agent.versions, { config: 4, secrets: 0 });
    assert.equal(agent.state, AgentState.Streaming);
    assert.equal(statSync(path.join(dir, 'config.json')).mode & 0o777, 0o600);
    assert.equal(new StateStore(dir).load()?.config.version, 4);
  });
});

test('fractional pool figures (wait microseconds) go out rounded and the stream stays up', { timeout: 15_000 }, async () => {
  const host = new FakeHost();
  const pool: PoolStats = {
    database: 'app',
    user: 'alice',
    poolMode: 'transaction',
    clientsActive: 1,
    clientsWaiting: 0,
    serversActive: 1,
    serversIdle: 0,
    serversOther: 0,
    transactionsTotal: 20,
    queriesTotal: 20,
    bytesReceived: 800,
    bytesSent: 1_600,
    waitTimeUsTotal: 7316.057999999998,
    transactionP99Ms: 0.75,
    waitP99Ms: 7.25,
  };
  host.pools = [pool];
  await withAgent(
    async ({ cp, agent }) => {
      const status = await cp.next((m) => m.status);
      assert.deepEqual(status.pools, [{ ...pool, waitTimeUsTotal: 7316 }]);
      // Before the fix this report failed to serialise and grpc-js closed the stream with INTERNAL.
      cp.push({ config: { version: 3, nonce: 'n-3', documentJson: doc(5) } });
      const ack = await cp.next((m) => m.ack);
      assert.deepEqual(ack, { type: ResourceType.RESOURCE_TYPE_CONFIG, nonce: 'n-3', version: 3 });
      assert.equal(cp.streams.length, 1);
      assert.equal(agent.state, AgentState.Streaming);
    },
    undefined,
    host,
  );
});

test('an unservable config is NACKed with field paths, the old one stays, and the same version is never re-applied', { timeout: 15_000 }, async () => {
  await withAgent(async ({ cp, host, agent }) => {
    await cp.next((m) => m.hello);
    cp.push({ config: { version: 1, nonce: 'a', documentJson: doc(5) } });
    await cp.next((m) => m.ack);

    const missing = path.join(os.tmpdir(), 'doorman-no-such-dir', 'server.crt');
    const bad = doc(6, { tls_certificate: missing, tls_private_key: missing });
    cp.push({ config: { version: 2, nonce: 'b', documentJson: bad } });
    const nack = await cp.next((m) => m.nack);
    assert.equal(nack.type, ResourceType.RESOURCE_TYPE_CONFIG);
    assert.equal(nack.nonce, 'b');
    assert.equal(nack.rejectedVersion, 2);
    assert.equal(nack.keptVersion, 1);
    assert.match(nack.errorDetail, /^general\.tls_certificate: cannot read ".*server\.crt": ENOENT$/m);
    assert.match(nack.errorDetail, /^general\.tls_private_key: cannot read/m);
    assert.equal(host.applied.length, 1);
    assert.deepEqual(agent.versions, { config: 1, secrets: 0 });

    // The same version again (say after a control-plane failover): answered from memory.
    const seen = cp.received.length;
    cp.push({ config: { version: 2, nonce: 'c', documentJson: bad } });
    const again = await cp.next((m) => m.nack, seen);
    assert.equal(again.nonce, 'c');
    assert.equal(again.errorDetail, nack.errorDetail);
    assert.equal(host.applied.length, 1);

    // A schema error comes back with its path; a host refusal with its message.
    cp.push({ config: { version: 3, nonce: 'd', documentJson: doc(-1) } });
    const schema = await cp.next((m) => (m.nack?.nonce === 'd' ? m.nack : undefined));
    assert.match(schema.errorDetail, /^pools\.app\.users\[0\]\.pool_size: /);
    host.refuse = 'listen EADDRINUSE 127.0.0.1:6432';
    cp.push({ config: { version: 4, nonce: 'e', documentJson: doc(8) } });
    const refused = await cp.next((m) => (m.nack?.nonce === 'e' ? m.nack : undefined));
    assert.equal(refused.errorDetail, 'the data plane refused the config: listen EADDRINUSE 127.0.0.1:6432');
    assert.equal(refused.keptVersion, 1);
  });
});

test('secrets are merged into the config in force and ACKed separately', { timeout: 15_000 }, async () => {
  await withAgent(async ({ cp, host, agent, dir }) => {
    await cp.next((m) => m.hello);
    // Secrets before any config are kept, not applied.
    cp.push({ secrets: { version: 3, nonce: 's3', users: [{ database: 'app', username: 'alice', password: 'pw-1', serverPassword: 'srv-1' }], adminPassword: 'adm' } });
    const ack1 = await cp.next((m) => m.ack);
    assert.deepEqual(ack1, { type: ResourceType.RESOURCE_TYPE_SECRETS, nonce: 's3', version: 3 });
    assert.equal(host.applied.length, 0);

    cp.push({ config: { version: 9, nonce: 'c9', documentJson: doc(4) } });
    await cp.next((m) => (m.ack?.nonce === 'c9' ? m.ack : undefined));
    const user = host.applied[0].config.pools.app.users[0];
    assert.equal(user.password, 'pw-1');
    assert.equal(user.serverPassword, 'srv-1');
    assert.equal(host.applied[0].config.general.adminPassword, 'adm');

    cp.push({ secrets: { version: 4, nonce: 's4', users: [{ database: 'app', username: 'alice', password: 'pw-2', serverPassword: '' }], adminPassword: '' } });
    await cp.next((m) => (m.ack?.nonce === 's4' ? m.ack : undefined));
    assert.equal(host.applied.length, 2);
    assert.equal(host.applied[1].config.pools.app.users[0].password, 'pw-2');
    assert.equal(host.applied[1].config.pools.app.users[0].serverPassword, null);
    assert.deepEqual(agent.versions, { config: 9, secrets: 4 });
    assert.equal(statSync(path.join(dir, 'secrets.json')).mode & 0o777, 0o600);
    assert.equal(new StateStore(dir).load()?.secrets?.users[0].password, 'pw-2');
  });
});

test('commands: reload re-applies, upgrade is not supported yet', { timeout: 15_000 }, async () => {
  await withAgent(async ({ cp, host }) => {
    await cp.next((m) => m.hello);
    cp.push({ config: { version: 1, nonce: 'a', documentJson: doc(5) } });
    await cp.next((m) => m.ack);
    cp.push({ command: { commandId: 'r1', reload: {} } });
    const reload = await cp.next((m) => m.commandResult);
    assert.deepEqual(reload, { commandId: 'r1', ok: true, detail: 're-applied config version 1' });
    assert.equal(host.applied.length, 2);
    cp.push({ command: { commandId: 'u1', upgrade: { binaryPath: '' } } });
    const upgrade = await cp.next((m) => (m.commandResult?.commandId === 'u1' ? m.commandResult : undefined));
    assert.deepEqual(upgrade, { commandId: 'u1', ok: false, detail: 'binary upgrade is not supported yet' });
  });
});

test('fails over past an address that refuses, and Hello after a reconnect carries the versions in force', { timeout: 20_000 }, async () => {
  await withAgent(
    async ({ cp, agent }) => {
      await cp.next((m) => m.hello);
      assert.equal(agent.currentAddress, cp.address);
      cp.push({ config: { version: 6, nonce: 'x', documentJson: doc(5) } });
      await cp.next((m) => m.ack);
      // The control plane drops the stream: the agent tries the dead address, then comes back here.
      const seen = cp.received.length;
      cp.streams[0].emit('error', { code: grpc.status.UNAVAILABLE, details: 'replica restarting' });
      const hello = await cp.next((m) => m.hello, seen);
      assert.equal(hello.configVersion, 6);
      assert.equal(cp.streams.length, 2);
    },
    async (live) => [await deadAddress(), live],
  );
});

test('with no control plane, the last-known-good config is served after the initial wait', { timeout: 15_000 }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'doorman-agent-lkg-'));
  const store = new StateStore(dir);
  store.saveConfig({ version: 12, documentJson: doc(3) });
  store.saveSecrets({ version: 5, users: [{ database: 'app', username: 'alice', password: 'lkg-pw', serverPassword: '' }], adminPassword: '' });
  const host = new FakeHost();
  const agent = new Agent(options([await deadAddress()], dir), log, host, store);
  try {
    agent.start();
    const started = Date.now();
    assert.equal(await agent.whenConfigured(300), false);
    assert.ok(Date.now() - started >= 290);
    const lkg = store.load();
    assert.notEqual(lkg, null);
    assert.equal(await agent.bootFrom(lkg!), true);
    assert.equal(host.applied.length, 1);
    assert.equal(host.applied[0].config.pools.app.users[0].password, 'lkg-pw');
    assert.deepEqual(agent.versions, { config: 12, secrets: 5 });
    assert.equal(await agent.whenConfigured(10), true);
    assert.notEqual(agent.state, AgentState.Streaming);
  } finally {
    agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
