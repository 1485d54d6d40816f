/**
 * The control plane's view of etcd, behind an interface so the etcd client (etcd3, unmaintained since
 * 2023) can be swapped. Revisions and lease ids stay strings: they are 64-bit.
 */
import type { Doc } from '../secrets/split.js';

/** One applied generation: an immutable, secret-free snapshot plus its history line. */
export interface GenerationRecord {
  generation: number;
  author: string;
  appliedAtUnixMs: number;
  summary: string;
  document: Doc;
  /** The secrets generation in force with this snapshot. */
  secretsGeneration: number;
}

export interface LeaderRecord {
  replicaId: string;
  address: string;
}

export interface ReplicaRecord {
  replicaId: string;
  address: string;
  version: string;
  startedAtUnixMs: number;
}

/** A data plane as last recorded by the replica its stream was attached to. */
export interface NodeRecord {
  nodeId: string;
  labels: Record<string, string>;
  version: string;
  hostname: string;
  pid: number;
  /** False once the stream ended; see StoreView.live for lease-backed liveness. */
  connected: boolean;
  lastSeenUnixMs: number;
  ackedConfigVersion: number;
  ackedSecretsVersion: number;
  nackedVersion: number;
  nackError: string;
  /** Address of the replica holding the stream. */
  attachedTo: string;
  clients: number;
  servers: number;
  pools: PoolStatsRecord[];
}

/** PoolStats as plain JSON. */
export interface PoolStatsRecord {
  database: string;
  user: string;
  poolMode: string;
  clientsActive: number;
  clientsWaiting: number;
  serversActive: number;
  serversIdle: number;
  serversOther: number;
  transactionsTotal: number;
  queriesTotal: number;
  bytesReceived: number;
  bytesSent: number;
  waitTimeUsTotal: number;
  transactionP99Ms: number;
  waitP99Ms: number;
}

/** What a write sees before it commits: the generation key and its mod revision (the CAS anchor). */
export interface Head {
  generation: number;
  modRevision: string;
  secretsGeneration: number;
  record: GenerationRecord | null;
  /** The sealed secrets of secretsGeneration, or null when none were ever stored. */
  sealedSecrets: unknown;
}

/** Proof of leadership: the leader key's create revision, compared in every leader write. */
export interface Fence {
  createRevision: string;
}

export interface CommitRequest {
  fence: Fence;
  expectedModRevision: string;
  record: GenerationRecord;
  /** Present when the secrets generation moves to record.secretsGeneration. */
  sealedSecrets?: unknown;
  /** Generations and secret generations below these are deleted in the same transaction. */
  pruneGenerationsBelow: number;
  pruneSecretsBelow: number;
}

export type CommitOutcome = 'committed' | 'conflict' | 'fenced';

/** A node record write; `live` puts the lease-backed liveness key too. */
export interface NodeWrite {
  record: NodeRecord;
  live: boolean;
}

export type Section = 'config' | 'secrets' | 'leader' | 'nodes' | 'replicas';

/** The watch-fed cache: every read request is served from it, so reads keep working while etcd is down. */
export interface StoreView {
  generation: number;
  secretsGeneration: number;
  generations: ReadonlyMap<number, GenerationRecord>;
  secrets: ReadonlyMap<number, unknown>;
  leader: { record: LeaderRecord; createRevision: string } | null;
  replicas: ReadonlyMap<string, ReplicaRecord>;
  nodes: ReadonlyMap<string, NodeRecord>;
  /** nodeId -> address of the replica whose lease keeps the node's liveness key. */
  live: ReadonlyMap<string, string>;
  /** The etcd revision the cache reflects. */
  revision: string;
}

export interface Store {
  start(): Promise<void>;
  close(): Promise<void>;
  view(): StoreView;
  /** Called after the cache changed, with the sections touched. */
  onChange(listener: (sections: ReadonlySet<Section>) => void): () => void;

  /** A linearizable read of the head (the generation key and the current snapshot). */
  readHead(): Promise<Head>;
  /** Reads one generation's snapshot (cache first). */
  readGeneration(generation: number): Promise<GenerationRecord | null>;
  readSecrets(secretsGeneration: number): Promise<unknown>;
  /** One fenced compare-and-swap transaction. */
  commit(request: CommitRequest): Promise<CommitOutcome>;

  grantLease(ttlSeconds: number): Promise<string>;
  /** One keepalive; false when etcd says the lease is gone. Rejects when etcd is unreachable. */
  keepAlive(leaseId: string, timeoutMs: number): Promise<boolean>;
  revokeLease(leaseId: string): Promise<void>;

  /** Creates the leader key if absent; returns its create revision, or null when someone holds it. */
  tryAcquireLeader(record: LeaderRecord, leaseId: string): Promise<string | null>;
  /** Deletes the leader key if it is still ours. */
  releaseLeader(fence: Fence): Promise<void>;

  putReplica(record: ReplicaRecord, leaseId: string): Promise<void>;
  /** Writes node records in transactions of at most 128 operations. */
  writeNodes(writes: readonly NodeWrite[], leaseId: string): Promise<void>;
  /** Marks a node disconnected and drops its liveness key, but only if `address` still holds it. */
  detachNode(record: NodeRecord, address: string): Promise<void>;
  /**
   * Deletes a node's record if it is still `record` (the node has not come back since) and has no liveness
   * key, and the fence still holds; false when any of that changed.
   */
  forgetNode(record: NodeRecord, fence: Fence): Promise<boolean>;
}
