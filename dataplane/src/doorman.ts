/**
 * The data plane process, main thread: the listener and the worker shards. The main thread accepts each
 * client (paused, nothing read) and hands its descriptor to the shard with the fewest clients; from then
 * on the shard owns the client and the server connections it uses, so bytes never cross threads. What the
 * shards share is small: the per-pool server caps and client counts in shared memory (Atomics), and a few
 * messages relayed here (admin figures, PAUSE/RESUME, reload, cancel requests for another shard, shutdown).
 */
import net from 'node:net';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { DoormanConfig } from '@doorman/proto';
import type { Logger } from 'pino';
import type { ShardSnapshot } from './admin/view.js';
import type { LoadedConfig } from './config/load.js';
import { diffPools } from './config/pool-diff.js';
import { slotStride } from './pool/budget.js';
import { dupDescriptor } from './workers/fd.js';
import { MAX_SHARDS, SHARD_BITS, type MainToShard, type ShardInit, type ShardToMain, type SlotTable } from './workers/messages.js';

/** Pools (database, user) the shared budget memory has room for over the process's life. */
const MAX_SLOTS = 4096;
/** A shard that does not answer an admin snapshot request in this time is left out of the figures. */
const SNAPSHOT_TIMEOUT_MS = 2000;

/** What SIGHUP and SIGTERM do (the CLI owns the config path and the process exit); the console's RELOAD and SHUTDOWN. */
export interface ProcessControls {
  reload(): void;
  shutdown(): void;
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
  private nextGather = 1;
  private readonly gathers = new Map<number, SnapshotGather>();

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
  }

  /** Starts the shards, then binds the listener; resolves with the bound address. */
  async listen(): Promise<net.AddressInfo> {
    await Promise.all(Array.from({ length: this.shards }, (_, i) => this.startShard(i)));
    const g = this.config.general;
    const server = net.createServer({ pauseOnConnect: true }, (socket) => this.onConnection(socket));
    this.listener = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: g.host, port: g.port, backlog: 4096 }, () => {
        server.removeListener('error', reject);
        const addr = server.address() as net.AddressInfo;
        this.log.info({ host: addr.address, port: addr.port, workers: this.shards, pools: this.poolNames() }, 'listening');
        resolve(addr);
      });
    });
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
    try {
      fd = dupDescriptor((socket as unknown as { _handle: { fd: number } })._handle.fd);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'cannot hand a client over to a worker');
      socket.destroy();
      return;
    }
    // Closes only this thread's descriptor: the connection lives on in the duplicate.
    socket.destroy();
    Atomics.add(this.clientCells, best, 1);
    this.post(best, { t: 'socket', fd });
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
        void this.snapshots().then((snaps) => this.post(from, { t: 'snapshots', id: m.id, snaps }));
        return;
      case 'snapshot': {
        const g = this.gathers.get(m.id);
        if (g === undefined) return;
        g.snaps[from] = m.snap;
        if (--g.left === 0) this.finishGather(m.id);
        return;
      }
      case 'control':
        if (m.op === 'reload') this.controls.reload();
        else if (m.op === 'shutdown') this.controls.shutdown();
        else this.broadcast({ t: 'control', op: m.op, database: m.database });
        return;
      case 'cancel': {
        const owner = m.processId & ((1 << SHARD_BITS) - 1);
        if (owner < this.shards) this.post(owner, { t: 'cancel', processId: m.processId, secretKey: m.secretKey });
        return;
      }
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
  snapshots(): Promise<ShardSnapshot[]> {
    const id = this.nextGather++;
    return new Promise((resolve) => {
      this.gathers.set(id, { snaps: new Array(this.shards), left: this.shards, done: resolve });
      this.broadcast({ t: 'snapshot', id });
      setTimeout(() => this.finishGather(id), SNAPSHOT_TIMEOUT_MS).unref();
    });
  }

  private finishGather(id: number): void {
    const g = this.gathers.get(id);
    if (g === undefined) return;
    this.gathers.delete(id);
    g.done(g.snaps.filter((s) => s !== undefined));
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
    const diff = diffPools(this.config, next);
    this.config = { ...next, general: { ...next.general, host: g.host, port: g.port, workers: g.workers } };
    this.broadcast({ t: 'reload', config: this.config, slots: this.slotTable() });
    this.log.info(diff, 'configuration reloaded');
    if (listenChanged) this.log.warn('general.host/general.port changes need a restart; still listening on the old address');
    if (workersChanged) this.log.warn('general.workers changes need a restart');
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
  }
}
