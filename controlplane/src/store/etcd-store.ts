import { setTimeout as sleep } from 'node:timers/promises';
import { Range, type Etcd3, type IKeyValue, type IWatchResponse, type Namespace, type Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { KEYS, generationKey, keyNumber, liveKey, nodeKey, replicaKey, secretsKey } from './keys.js';
import type {
  CommitOutcome,
  CommitRequest,
  Fence,
  GenerationRecord,
  Head,
  LeaderRecord,
  NodeRecord,
  NodeWrite,
  ReplicaRecord,
  Section,
  Store,
  StoreView,
} from './store.js';

/** etcd's default --max-txn-ops. */
export const MAX_TXN_OPS = 128;

export interface EtcdStoreOptions {
  /** How often the watch is checked against a fresh read of the head keys. */
  livenessIntervalMs: number;
}

interface MutableView {
  generation: number;
  secretsGeneration: number;
  generations: Map<number, GenerationRecord>;
  secrets: Map<number, unknown>;
  leader: { record: LeaderRecord; createRevision: string } | null;
  replicas: Map<string, ReplicaRecord>;
  nodes: Map<string, NodeRecord>;
  live: Map<string, string>;
  revision: string;
}

function emptyView(): MutableView {
  return {
    generation: 0,
    secretsGeneration: 0,
    generations: new Map(),
    secrets: new Map(),
    leader: null,
    replicas: new Map(),
    nodes: new Map(),
    live: new Map(),
    revision: '0',
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function generationOf(text: string | null): number {
  if (text === null) return 0;
  const v = parseJson(text) as { generation?: unknown } | undefined;
  return typeof v?.generation === 'number' ? v.generation : 0;
}

/**
 * Store on etcd through the etcd3 client: all keys under one namespace, a list-then-watch cache of
 * the whole namespace, and fenced compare-and-swap transactions for writes.
 */
export class EtcdStore implements Store {
  private readonly ns: Namespace;
  private viewValue: MutableView = emptyView();
  private readonly listeners = new Set<(sections: ReadonlySet<Section>) => void>();
  private watcher: Watcher | null = null;
  private closed = false;
  private livenessTimer: NodeJS.Timeout | null = null;
  private resyncing: Promise<void> | null = null;
  /** Head mod revisions seen by the previous liveness check that the cache had not reached. */
  private lagging = false;

  constructor(
    private readonly client: Etcd3,
    prefix: string,
    private readonly log: Logger,
    private readonly options: EtcdStoreOptions,
  ) {
    this.ns = client.namespace(prefix);
  }

  async start(): Promise<void> {
    await this.resync();
    this.livenessTimer = setInterval(() => void this.checkLiveness(), this.options.livenessIntervalMs);
    this.livenessTimer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.livenessTimer) clearInterval(this.livenessTimer);
    const watcher = this.watcher;
    this.watcher = null;
    await watcher?.cancel().catch(() => undefined);
    this.client.close();
  }

  view(): StoreView {
    return this.viewValue;
  }

  onChange(listener: (sections: ReadonlySet<Section>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ------------------------------------------------------------------ cache

  private emit(sections: Set<Section>): void {
    if (sections.size === 0) return;
    for (const listener of [...this.listeners]) {
      try {
        listener(sections);
      } catch (err) {
        this.log.error({ err }, 'store listener failed');
      }
    }
  }

  /** Applies one key's new value (null = deleted) to the view; returns the section it belongs to. */
  private applyKey(view: MutableView, key: string, value: string | null, createRevision: string): Section | null {
    if (key === KEYS.generation) {
      view.generation = generationOf(value);
      return 'config';
    }
    if (key === KEYS.secretsGeneration) {
      view.secretsGeneration = generationOf(value);
      return 'secrets';
    }
    if (key === KEYS.leader) {
      const record = value === null ? undefined : (parseJson(value) as LeaderRecord | undefined);
      view.leader = record ? { record, createRevision } : null;
      return 'leader';
    }
    const gen = keyNumber(key, KEYS.generationsPrefix);
    if (gen !== null) {
      const record = value === null ? undefined : (parseJson(value) as GenerationRecord | undefined);
      if (record) view.generations.set(gen, record);
      else view.generations.delete(gen);
      return 'config';
    }
    const sgen = keyNumber(key, KEYS.secretsPrefix);
    if (sgen !== null) {
      const box = value === null ? undefined : parseJson(value);
      if (box !== undefined) view.secrets.set(sgen, box);
      else view.secrets.delete(sgen);
      return 'secrets';
    }
    const maps: [string, Map<string, unknown>, Section, boolean][] = [
      [KEYS.replicasPrefix, view.replicas, 'replicas', true],
      [KEYS.nodesPrefix, view.nodes, 'nodes', true],
      [KEYS.livePrefix, view.live, 'nodes', false],
    ];
    for (const [prefix, map, section, json] of maps) {
      if (!key.startsWith(prefix)) continue;
      const id = key.slice(prefix.length);
      const parsed = value === null ? undefined : json ? parseJson(value) : value;
      if (parsed !== undefined) map.set(id, parsed);
      else map.delete(id);
      return section;
    }
    return null;
  }

  /** List-then-watch: rebuilds the cache from a read at revision R and watches from R+1. */
  private resync(): Promise<void> {
    this.resyncing ??= this.doResync().finally(() => {
      this.resyncing = null;
    });
    return this.resyncing;
  }

  private async doResync(): Promise<void> {
    const old = this.watcher;
    this.watcher = null;
    await old?.cancel().catch(() => undefined);
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        const res = await this.ns.getAll().exec();
        const view = emptyView();
        for (const kv of res.kvs) this.applyKey(view, kv.key.toString('utf8'), kv.value.toString('utf8'), kv.create_revision);
        view.revision = res.header.revision;
        this.viewValue = view;
        this.lagging = false;
        await this.watchFrom(BigInt(res.header.revision) + 1n);
        this.emit(new Set<Section>(['config', 'secrets', 'leader', 'nodes', 'replicas']));
        return;
      } catch (err) {
        if (attempt === 0 || attempt % 20 === 0) this.log.warn({ err: String(err) }, 'etcd list failed; retrying');
        await sleep(Math.min(250 * 2 ** attempt, 1_000));
      }
    }
  }

  private async watchFrom(revision: bigint): Promise<void> {
    const watcher = await this.ns.watch().prefix('').startRevision(revision.toString()).create();
    if (this.closed) {
      await watcher.cancel();
      return;
    }
    this.watcher = watcher;
    watcher.on('data', (res: IWatchResponse) => {
      if (this.watcher !== watcher) return;
      const sections = new Set<Section>();
      for (const ev of res.events) {
        const kv: IKeyValue = ev.kv;
        const section = this.applyKey(this.viewValue, kv.key.toString('utf8'), ev.type === 'Delete' ? null : kv.value.toString('utf8'), kv.create_revision);
        if (section) sections.add(section);
      }
      if (BigInt(res.header.revision) > BigInt(this.viewValue.revision)) this.viewValue.revision = res.header.revision;
      this.emit(sections);
    });
    watcher.on('error', (err: Error) => {
      if (this.watcher !== watcher || this.closed) return;
      // Typically the resume revision was compacted: only a fresh list is safe.
      this.log.warn({ err: err.message }, 'etcd watch failed; re-listing');
      void this.resync();
    });
  }

  /**
   * The library's watches have been known to stop silently after reconnects: compare the head keys'
   * mod revisions with the cache, and re-list if the cache stays behind across two checks.
   */
  private async checkLiveness(): Promise<void> {
    if (this.closed || this.resyncing) return;
    try {
      const head = await this.ns.get(KEYS.generation).exec();
      const kv = head.kvs[0];
      const cached = this.viewValue.generation;
      const stored = kv ? generationOf(kv.value.toString('utf8')) : 0;
      if (stored !== cached) {
        if (this.lagging) {
          this.log.warn({ stored, cached }, 'etcd watch is behind; re-listing');
          await this.resync();
          return;
        }
        this.lagging = true;
      } else {
        this.lagging = false;
      }
    } catch {
      // etcd unreachable: the watch reconnects on its own; nothing to compare against.
    }
  }

  // ------------------------------------------------------------------ reads

  async readHead(): Promise<Head> {
    const res = await this.ns.if(KEYS.generation, 'Mod', '>', -1).then(this.ns.get(KEYS.generation), this.ns.get(KEYS.secretsGeneration)).commit();
    const genKv = res.responses[0]?.response_range.kvs[0];
    const sgenKv = res.responses[1]?.response_range.kvs[0];
    const generation = genKv ? generationOf(genKv.value.toString('utf8')) : 0;
    const secretsGeneration = sgenKv ? generationOf(sgenKv.value.toString('utf8')) : 0;
    const record = generation > 0 ? await this.readGeneration(generation) : null;
    const sealedSecrets = secretsGeneration > 0 ? await this.readSecrets(secretsGeneration) : null;
    return { generation, modRevision: genKv?.mod_revision ?? '0', secretsGeneration, record, sealedSecrets };
  }

  async readGeneration(generation: number): Promise<GenerationRecord | null> {
    const cached = this.viewValue.generations.get(generation);
    if (cached) return cached;
    const text = await this.ns.get(generationKey(generation)).string();
    return text === null ? null : (parseJson(text) as GenerationRecord);
  }

  async readSecrets(secretsGeneration: number): Promise<unknown> {
    const cached = this.viewValue.secrets.get(secretsGeneration);
    if (cached !== undefined) return cached;
    const text = await this.ns.get(secretsKey(secretsGeneration)).string();
    return text === null ? null : parseJson(text);
  }

  // ------------------------------------------------------------------ writes

  async commit(request: CommitRequest): Promise<CommitOutcome> {
    const { record } = request;
    const ops = [
      this.ns.put(KEYS.generation).value(JSON.stringify({ generation: record.generation })),
      this.ns.put(generationKey(record.generation)).value(JSON.stringify(record)),
    ];
    if (request.sealedSecrets !== undefined) {
      ops.push(this.ns.put(secretsKey(record.secretsGeneration)).value(JSON.stringify(request.sealedSecrets)));
      ops.push(this.ns.put(KEYS.secretsGeneration).value(JSON.stringify({ generation: record.secretsGeneration })));
    }
    const deletes = [];
    if (request.pruneGenerationsBelow > 1) {
      deletes.push(this.ns.delete().range(new Range(KEYS.generationsPrefix, generationKey(request.pruneGenerationsBelow))));
    }
    if (request.pruneSecretsBelow > 1) {
      deletes.push(this.ns.delete().range(new Range(KEYS.secretsPrefix, secretsKey(request.pruneSecretsBelow))));
    }
    const res = await this.ns
      .if(KEYS.generation, 'Mod', '==', request.expectedModRevision)
      .and(KEYS.leader, 'Create', '==', request.fence.createRevision)
      .then(...ops, ...deletes)
      .else(this.ns.get(KEYS.leader))
      .commit();
    if (res.succeeded) return 'committed';
    const leader = res.responses[0]?.response_range.kvs[0];
    return leader?.create_revision === request.fence.createRevision ? 'conflict' : 'fenced';
  }

  async grantLease(ttlSeconds: number): Promise<string> {
    const lease = this.ns.lease(ttlSeconds, { autoKeepAlive: false });
    return lease.grant();
  }

  async keepAlive(leaseId: string, timeoutMs: number): Promise<boolean> {
    const res = await this.client.leaseClient.leaseKeepAlive({ deadline: Date.now() + timeoutMs });
    return new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => {
        res.end();
        reject(new Error('etcd request timed out: lease keepalive'));
      }, timeoutMs);
      res.on('data', (reply: { TTL: string }) => {
        clearTimeout(timer);
        res.end();
        resolve(Number(reply.TTL) > 0);
      });
      res.on('error', (err: Error) => {
        clearTimeout(timer);
        reject(err);
      });
      res.write({ ID: leaseId });
    });
  }

  async revokeLease(leaseId: string): Promise<void> {
    await this.client.leaseClient.leaseRevoke({ ID: leaseId });
  }

  async tryAcquireLeader(record: LeaderRecord, leaseId: string): Promise<string | null> {
    const res = await this.ns
      .if(KEYS.leader, 'Create', '==', 0)
      .then(this.ns.put(KEYS.leader).value(JSON.stringify(record)).lease(leaseId))
      .commit();
    // The put's create revision is the transaction's revision.
    return res.succeeded ? res.header.revision : null;
  }

  async releaseLeader(fence: Fence): Promise<void> {
    await this.ns.if(KEYS.leader, 'Create', '==', fence.createRevision).then(this.ns.delete().key(KEYS.leader)).commit();
  }

  async putReplica(record: ReplicaRecord, leaseId: string): Promise<void> {
    await this.ns.put(replicaKey(record.replicaId)).value(JSON.stringify(record)).lease(leaseId).exec();
  }

  async writeNodes(writes: readonly NodeWrite[], leaseId: string): Promise<void> {
    let batch: ReturnType<Namespace['put']>[] = [];
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const ops = batch;
      batch = [];
      await this.ns.if(KEYS.generation, 'Mod', '>', -1).then(...ops).commit();
    };
    for (const w of writes) {
      const needed = w.live ? 2 : 1;
      if (batch.length + needed > MAX_TXN_OPS) await flush();
      batch.push(this.ns.put(nodeKey(w.record.nodeId)).value(JSON.stringify(w.record)));
      if (w.live) batch.push(this.ns.put(liveKey(w.record.nodeId)).value(w.record.attachedTo).lease(leaseId));
    }
    await flush();
  }

  async forgetNode(record: NodeRecord, fence: Fence): Promise<boolean> {
    const result = await this.ns
      .if(nodeKey(record.nodeId), 'Value', '==', JSON.stringify(record))
      .and(liveKey(record.nodeId), 'Version', '==', 0)
      .and(KEYS.leader, 'Create', '==', fence.createRevision)
      .then(this.ns.delete().key(nodeKey(record.nodeId)))
      .commit();
    return result.succeeded;
  }

  async detachNode(record: NodeRecord, address: string): Promise<void> {
    await this.ns
      .if(liveKey(record.nodeId), 'Value', '==', address)
      .then(this.ns.put(nodeKey(record.nodeId)).value(JSON.stringify(record)), this.ns.delete().key(liveKey(record.nodeId)))
      .commit();
  }
}
