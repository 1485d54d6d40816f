/**
 * The data plane process, main thread: the listener and the worker shards. The main thread accepts each
 * client (paused, nothing read) and hands its descriptor to the shard with the fewest clients; from then
 * on the shard owns the client and the server connections it uses, so bytes never cross threads. What the
 * shards share is small: the per-pool server caps and client counts in shared memory (Atomics), and a few
 * messages relayed here (admin figures, PAUSE/RESUME, reload, cancel requests for another shard, shutdown).
 */
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { DoormanConfig } from '@doorman/proto';
import type { Logger } from 'pino';
import { clientShard, FULL_DETAIL, mergeSnapshots, type ShardSnapshot, type SnapshotDetail } from './admin/view.js';
import type { LoadedConfig } from './config/load.js';
import { diffPools } from './config/pool-diff.js';
import type { LogLevel } from './log.js';
import { MetricsServer } from './metrics/server.js';
import { slotStride } from './pool/budget.js';
import type { MigratedClient, NewToOld, OldToNew } from './upgrade/messages.js';
import { checkTarget, startNewProcess, type UpgradeTarget } from './upgrade/spawn.js';
import { dupSocketDescriptor } from './workers/fd.js';
import { MAX_SHARDS, ownerShard, type MainToShard, type ShardInit, type ShardToMain, type SlotTable } from './workers/messages.js';
import { applyShardHeapFlags } from './workers/heap-flags.js';

/** Pools (database, user) the shared budget memory has room for over the process's life. */
const MAX_SLOTS = 4096;
/** Bound on the new process's start-up during a binary upgrade. */
const UPGRADE_READY_TIMEOUT_MS = 30_000;
/** A shard that does not answer an admin snapshot request in this time is left out of the figures. */
const SNAPSHOT_TIMEOUT_MS = 2000;

/** What SIGHUP and SIGTERM do (the CLI owns the config path and the process exit); the console's RELOAD and SHUTDOWN. */
export interface ProcessControls {
  reload(): void;
  shutdown(): void;
  /** Binary upgrade (the console's UPGRADE); absent where the process cannot re-execute itself. */
  upgrade?: () => void;
}

export interface DoormanOptions {
  /** Command-line overrides of general.log_level / log_format, passed on to the shards. */
  logLevel?: string;
  logFormat?: 'json' | 'pretty';
}

interface SnapshotGather {
  snaps: ShardSnapshot[];
  left: number;
  done: (snaps: ShardSnapshot[]) => void;
}

export class Doorman {
  config: DoormanConfig;
  readonly shards: number;
  private readonly workers: Worker[] = [];
  private readonly budgetMemory: SharedArrayBuffer;
  private readonly clientCells: Int32Array;
  private readonly clientMemory: SharedArrayBuffer;
  private readonly slots = new Map<string, number>();
  private readonly channel = `doorman-budget-${process.pid}-${Date.now()}`;
  private listener: net.Server | null = null;
  private shuttingDown = false;
  private stopped: Promise<void> | null = null;
  /** The other process of a binary upgrade: the new one (seen from the old) or the old one (from the new). */
  private peer: ChildProcess | NodeJS.Process | null = null;
  private upgrading = false;
  private shardsMigrated = 0;
  private handoffs = 0;
  private upgradeStarted = 0;
  private clientsMoved = 0;
  private oldFinishing = false;
  private nextGather = 1;
  private readonly gathers = new Map<number, SnapshotGather>();
  private metrics: MetricsServer | null = null;
  private metricsAddr: net.AddressInfo | null = null;

  constructor(
    loaded: LoadedConfig,
    readonly log: Logger,
    private readonly controls: ProcessControls,
    private readonly opts: DoormanOptions = {},
  ) {
    this.config = loaded.config;
    const wanted = loaded.config.general.workers;
    this.shards = Math.min(MAX_SHARDS, wanted > 0 ? wanted : os.availableParallelism());
    this.budgetMemory = new SharedArrayBuffer(MAX_SLOTS * slotStride(this.shards) * 4);
    this.clientMemory = new SharedArrayBuffer(this.shards * 4);
    this.clientCells = new Int32Array(this.clientMemory);
    this.assignSlots(loaded.config);
    applyShardHeapFlags();
  }

  /** Starts the shards, then binds the listener; resolves with the bound address. */
  async listen(): Promise<net.AddressInfo> {
    await Promise.all(Array.from({ length: this.shards }, (_, i) => this.startShard(i)));
    const g = this.config.general;
    const server = net.createServer({ pauseOnConnect: true }, (socket) => this.onConnection(socket));
    this.listener = server;
    return new Promise<net.AddressInfo>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: g.host, port: g.port, backlog: 4096 }, () => {
        server.removeListener('error', reject);
        const addr = server.address() as net.AddressInfo;
        this.log.info({ host: addr.address, port: addr.port, workers: this.shards, pools: this.poolNames() }, 'listening');
        resolve(addr);
      });
    }).then(async (addr) => {
      await this.startMetrics();
      return addr;
    });
  }

  /** The /metrics, /healthz, /readyz listener, when the config asks for one. */
  async startMetrics(): Promise<void> {
    const at = this.config.metrics.listen;
    if (at === null || this.metrics !== null) return;
    const m = new MetricsServer(
      {
        shards: this.shards,
        listening: () => this.listener !== null && !this.shuttingDown,
        clientTotal: () => this.clientTotal(),
        poolFigures: async () => mergeSnapshots(await this.snapshots({ lists: false, prepared: false })),
      },
      this.log,
    );
    this.metricsAddr = await m.listen(at.host, at.port);
    this.metrics = m;
    this.log.info({ host: this.metricsAddr.address, port: this.metricsAddr.port }, 'metrics listening');
  }

  /** Where /metrics is served; null without a metrics listener. */
  get metricsAddress(): net.AddressInfo | null {
    return this.metricsAddr;
  }

  /** SET log_level from the console: this thread and every shard. */
  setLogLevel(level: LogLevel): void {
    this.log.level = level;
    this.broadcast({ t: 'control', control: { op: 'log_level', level } });
    this.log.info({ level }, 'log level changed');
  }

  private startShard(index: number): Promise<void> {
    const init: ShardInit = {
      index,
      shards: this.shards,
      config: this.config,
      slots: this.slotTable(),
      budgetMemory: this.budgetMemory,
      clientMemory: this.clientMemory,
      channel: this.channel,
      logLevel: this.opts.logLevel ?? null,
      logFormat: this.opts.logFormat ?? null,
    };
    const w = new Worker(new URL('./workers/shard-main.js', import.meta.url), { workerData: init });
    this.workers[index] = w;
    return new Promise((resolve, reject) => {
      w.once('error', reject);
      w.on('message', (m: ShardToMain) => {
        if (m.t === 'ready') {
          w.removeListener('error', reject);
          w.on('error', (err) => this.shardFailed(index, err));
          resolve();
          return;
        }
        this.onShardMessage(index, m);
      });
      w.on('exit', (code) => {
        if (!this.shuttingDown) this.shardFailed(index, new Error(`worker exited with code ${code}`));
      });
    });
  }

  /** A shard died: its clients are gone and the others cannot know what it held. Fail loudly (a supervisor restarts us). */
  private shardFailed(index: number, err: Error): void {
    this.log.fatal({ shard: index, err: err.message, stack: err.stack }, 'worker shard failed');
    process.exit(70);
  }

  private onConnection(socket: net.Socket): void {
    if (this.shuttingDown) {
      socket.destroy();
      return;
    }
    let best = 0;
    let fewest = Atomics.load(this.clientCells, 0);
    for (let i = 1; i < this.shards; i++) {
      const n = Atomics.load(this.clientCells, i);
      if (n < fewest) {
        best = i;
        fewest = n;
      }
    }
    let fd: number;
    const address = socket.remoteAddress;
    const port = socket.remotePort;
    try {
      fd = dupSocketDescriptor(socket);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'cannot hand a client over to a worker');
      socket.destroy();
      return;
    }
    // Closes only this thread's descriptor: the connection lives on in the duplicate.
    socket.destroy();
    Atomics.add(this.clientCells, best, 1);
    this.post(best, { t: 'socket', fd, address, port });
  }

  private post(shard: number, m: MainToShard): void {
    this.workers[shard].postMessage(m);
  }

  private broadcast(m: MainToShard): void {
    for (let i = 0; i < this.shards; i++) this.post(i, m);
  }

  private onShardMessage(from: number, m: ShardToMain): void {
    switch (m.t) {
      case 'snapshots':
        void this.snapshots(m.detail).then((snaps) => this.post(from, { t: 'snapshots', id: m.id, snaps }));
        return;
      case 'snapshot': {
        const g = this.gathers.get(m.id);
        if (g === undefined) return;
        g.snaps[from] = m.snap;
        if (--g.left === 0) this.finishGather(m.id);
        return;
      }
      case 'control': {
        const c = m.control;
        if (c.op === 'reload') this.controls.reload();
        else if (c.op === 'shutdown') this.controls.shutdown();
        else if (c.op === 'upgrade') {
          if (this.controls.upgrade !== undefined) this.controls.upgrade();
          else this.log.warn('UPGRADE: a binary upgrade is not available in agent mode');
        }
        else if (c.op === 'log_level') this.setLogLevel(c.level);
        else if (c.op === 'kill_client') this.post(clientShard(c.id) % this.shards, { t: 'control', control: c });
        else this.broadcast({ t: 'control', control: c });
        return;
      }
      case 'cancel':
        if (m.shard >= 0) this.post(m.shard, { t: 'cancel', processId: m.processId, secretKey: m.secretKey, final: false });
        else this.peer?.send?.({ t: 'cancel', processId: m.processId, secretKey: m.secretKey } satisfies OldToNew | NewToOld);
        return;
      case 'migrated':
        this.handToNewProcess(m.fd, m.client);
        return;
      case 'migrationDone':
        this.shardsMigrated++;
        this.maybeFinishOld(false);
        return;
      case 'exited':
      case 'ready':
        return;
    }
  }

  get general(): DoormanConfig['general'] {
    return this.config.general;
  }

  /** Clients connected to every shard. */
  clientTotal(): number {
    let n = 0;
    for (let i = 0; i < this.shards; i++) n += Atomics.load(this.clientCells, i);
    return n;
  }

  /** Every shard's admin snapshot, in shard order. */
  snapshots(detail: SnapshotDetail = FULL_DETAIL): Promise<ShardSnapshot[]> {
    const id = this.nextGather++;
    return new Promise((resolve) => {
      this.gathers.set(id, { snaps: new Array(this.shards), left: this.shards, done: resolve });
      this.broadcast({ t: 'snapshot', id, detail });
      setTimeout(() => this.finishGather(id), SNAPSHOT_TIMEOUT_MS).unref();
    });
  }

  private finishGather(id: number): void {
    const g = this.gathers.get(id);
    if (g === undefined) return;
    this.gathers.delete(id);
    g.done(g.snaps.filter((s) => s !== undefined));
  }

  // ---- binary upgrade ----

  /**
   * Old process: checks the new binary with the config, starts it, hands it the listening socket and, once
   * it is ready, stops accepting and moves every idle client to it (clients in a transaction move when
   * their transaction ends; session-mode and TLS clients stay until they leave or shutdown_timeout). The
   * process ends when its last client is gone. Throws (and keeps serving) when the new binary fails.
   */
  async upgrade(target: UpgradeTarget): Promise<number> {
    if (this.upgrading || this.shuttingDown || this.listener === null) throw new Error('an upgrade or a shutdown is already under way');
    this.upgrading = true;
    const listener = this.listener;
    try {
      checkTarget(target);
      const child = await startNewProcess(target, UPGRADE_READY_TIMEOUT_MS, (c) => c.send({ t: 'listener' } satisfies OldToNew, listener));
      this.peer = child;
      this.upgradeStarted = Date.now();
      child.on('message', (m: NewToOld) => {
        if (m.t === 'cancel') this.post(ownerShard(m.processId, this.shards), { t: 'cancel', processId: m.processId, secretKey: m.secretKey, final: true });
      });
      child.on('exit', (code, signal) => this.log.error({ newPid: child.pid, code, signal }, 'upgrade: the new process exited'));
      listener.close();
      this.listener = null;
      // The new process binds the metrics address as soon as this one lets go of it.
      const metrics = this.metrics;
      this.metrics = null;
      void metrics?.close();
      this.log.info({ newPid: child.pid }, 'upgrade: new process ready; moving clients');
      this.broadcast({ t: 'migrate' });
      setTimeout(() => this.maybeFinishOld(true), this.config.general.shutdownTimeout).unref();
      return child.pid ?? 0;
    } catch (err) {
      this.upgrading = false;
      throw err;
    }
  }

  private handToNewProcess(fd: number, client: MigratedClient): void {
    const child = this.peer as ChildProcess;
    // Not reading: bytes the client sends from now on stay in the kernel until the new process reads them.
    const socket = new net.Socket({ fd, readable: true, writable: true, pauseOnCreate: true } as net.SocketConstructorOpts);
    this.handoffs++;
    child.send({ t: 'client', client } satisfies OldToNew, socket, { keepOpen: false }, (err) => {
      this.handoffs--;
      if (err !== null) {
        this.log.error({ err: err.message, user: client.user, database: client.database }, 'upgrade: a client could not be handed over');
        socket.destroy();
      } else {
        this.clientsMoved++;
      }
      this.maybeFinishOld(false);
    });
  }

  /** The old process ends once every shard is empty and every handed-over socket has left, or at the deadline. */
  private maybeFinishOld(deadline: boolean): void {
    if (this.oldFinishing) return;
    if (!deadline && (this.shardsMigrated < this.shards || this.handoffs > 0)) return;
    this.oldFinishing = true;
    this.log.info(
      { moved: this.clientsMoved, left: this.clientTotal(), ms: Date.now() - this.upgradeStarted, deadline },
      'upgrade: old process exiting',
    );
    void this.shutdown(false).then(() => this.controls.shutdown());
  }

  /**
   * New process: starts the shards, takes the listening socket from the old process and tells it when
   * ready; clients then arrive over the IPC channel with their state.
   */
  async inherit(): Promise<net.AddressInfo> {
    const parent = process;
    if (parent.send === undefined) throw new Error('no IPC channel to the old process');
    const listener = new Promise<net.Server>((resolve) => {
      parent.on('message', (m: OldToNew, handle: unknown) => {
        if (m.t === 'listener') resolve(handle as net.Server);
        else if (m.t === 'client') this.adoptFromOld(handle as net.Socket, m.client);
        else if (m.t === 'cancel') this.post(ownerShard(m.processId, this.shards), { t: 'cancel', processId: m.processId, secretKey: m.secretKey, final: true });
      });
    });
    await Promise.all(Array.from({ length: this.shards }, (_, i) => this.startShard(i)));
    const server = await listener;
    // Set before the first connection event: accepted sockets must not start reading in this thread.
    (server as unknown as { pauseOnConnect: boolean }).pauseOnConnect = true;
    server.on('connection', (socket: net.Socket) => this.onConnection(socket));
    this.listener = server;
    this.peer = parent;
    parent.on('disconnect', () => {
      this.peer = null;
      this.log.info('upgrade: the old process is gone');
    });
    const addr = server.address() as net.AddressInfo;
    this.log.info({ host: addr.address, port: addr.port, workers: this.shards, pools: this.poolNames(), inherited: true }, 'listening');
    parent.send({ t: 'ready', pid: process.pid } satisfies NewToOld);
    void this.takeMetricsAddress();
    return addr;
  }

  /** The old process closes its metrics listener once this one is ready: bind as soon as the address is free. */
  private async takeMetricsAddress(): Promise<void> {
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        await this.startMetrics();
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    this.log.error('upgrade: the metrics address stayed in use; no metrics listener');
  }

  private adoptFromOld(socket: net.Socket, client: MigratedClient): void {
    socket.pause();
    (socket as unknown as { _handle?: { readStop?: () => void } })._handle?.readStop?.();
    let fd: number;
    try {
      fd = dupSocketDescriptor(socket);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'upgrade: cannot take over a client');
      socket.destroy();
      return;
    }
    const unread = socket.read() as Buffer | null;
    socket.destroy();
    if (unread !== null) client.pending = Buffer.concat([client.pending, unread]);
    const shard = ownerShard(client.processId, this.shards);
    Atomics.add(this.clientCells, shard, 1);
    this.post(shard, { t: 'adopt', fd, client });
  }

  // ---- config ----

  private assignSlots(config: DoormanConfig): void {
    for (const db of Object.values(config.pools)) {
      for (const u of db.users) {
        const key = `${db.name}\0${u.username}`;
        if (this.slots.has(key)) continue;
        if (this.slots.size >= MAX_SLOTS) throw new Error(`more than ${MAX_SLOTS} pools over this process's life; restart to configure more`);
        this.slots.set(key, this.slots.size);
      }
    }
  }

  private slotTable(): SlotTable {
    return [...this.slots];
  }

  private poolNames(): string[] {
    const out: string[] = [];
    for (const db of Object.values(this.config.pools)) for (const u of db.users) out.push(`${db.name}/${u.username}`);
    return out;
  }

  /**
   * Applies a new config on every shard. Pools whose server-side settings are unchanged keep their
   * connections; changed pools are replaced and drain; removed pools drain.
   */
  reload(loaded: LoadedConfig): void {
    const next = loaded.config;
    this.assignSlots(next);
    const g = this.config.general;
    const listenChanged = next.general.host !== g.host || next.general.port !== g.port;
    const workersChanged = next.general.workers !== g.workers;
    const metricsChanged = JSON.stringify(next.metrics.listen) !== JSON.stringify(this.config.metrics.listen);
    const diff = diffPools(this.config, next);
    this.config = { ...next, general: { ...next.general, host: g.host, port: g.port, workers: g.workers }, metrics: this.config.metrics };
    this.broadcast({ t: 'reload', config: this.config, slots: this.slotTable() });
    this.log.info(diff, 'configuration reloaded');
    if (listenChanged) this.log.warn('general.host/general.port changes need a restart; still listening on the old address');
    if (workersChanged) this.log.warn('general.workers changes need a restart');
    if (metricsChanged) this.log.warn('metrics.listen changes need a restart; the metrics listener stays as it was');
  }

  // ---- shutdown ----

  /**
   * Graceful: stop accepting; shards close clients that are between transactions and let the others finish
   * up to shutdown_timeout. Fast: close everything now. Resolves when every shard has no connection left.
   */
  shutdown(graceful: boolean): Promise<void> {
    this.stopped ??= this.stop(graceful);
    return this.stopped;
  }

  private async stop(graceful: boolean): Promise<void> {
    this.shuttingDown = true;
    this.listener?.close();
    const metrics = this.metrics;
    this.metrics = null;
    const metricsClosed = metrics?.close();
    const clients = this.clientTotal();
    const timeoutMs = graceful ? this.config.general.shutdownTimeout : 0;
    this.log.info({ graceful, clients, timeoutMs }, 'shutting down');
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            w.on('message', (m: ShardToMain) => {
              if (m.t === 'exited') resolve();
            });
            w.once('exit', () => resolve());
            w.postMessage({ t: 'shutdown', graceful } satisfies MainToShard);
          }),
      ),
    );
    await Promise.all(this.workers.map((w) => w.terminate()));
    await metricsClosed;
  }
}
