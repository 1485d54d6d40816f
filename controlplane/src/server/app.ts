import os from 'node:os';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { AdminService, DiscoveryService } from '@doorman/proto/api';
import type { Logger } from 'pino';
import { Applier } from '../apply/applier.js';
import { CpError } from '../errors.js';
import { DesiredState } from '../fleet/desired.js';
import { NodeRecorder } from '../fleet/recorder.js';
import { NodeRetention } from '../fleet/retention.js';
import { Election } from '../leader/election.js';
import { Session } from '../leader/session.js';
import type { SecretsSealer } from '../secrets/sealer.js';
import { createEtcdClient } from '../store/etcd-client.js';
import { EtcdStore } from '../store/etcd-store.js';
import { VERSION } from '../version.js';
import { adminService } from './admin.js';
import type { AuthPolicy } from './auth.js';
import { serverTlsCredentials, type TlsFiles } from './credentials.js';
import { DiscoveryHub } from './discovery.js';

export interface AppOptions {
  etcd: string[];
  prefix: string;
  listen: string;
  /** Address other replicas and clients use; default the bound address. */
  advertise: string | null;
  replicaId: string | null;
  leaseTtlSeconds: number;
  historyLimit: number;
  /** Records of nodes gone longer than this are deleted. */
  nodeRetentionMs: number;
  tls: TlsFiles | null;
  adminToken: string | null;
  sealer: SecretsSealer;
  allowPlaintextSecrets: boolean;
  etcdTimeoutMs: number;
}

/** One control-plane replica: gRPC server, etcd store, lease, election and the fleet. */
export class ControlPlane {
  private server: Server | null = null;
  private store: EtcdStore | null = null;
  private session: Session | null = null;
  private election: Election | null = null;
  private recorder: NodeRecorder | null = null;
  private retention: NodeRetention | null = null;
  private hub: DiscoveryHub | null = null;
  address = '';

  constructor(
    private readonly options: AppOptions,
    private readonly log: Logger,
  ) {}

  async start(): Promise<string> {
    const o = this.options;
    const server = new Server({
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
      'grpc.max_receive_message_length': 8 * 1024 * 1024,
    });
    this.server = server;
    const credentials = o.tls ? serverTlsCredentials(o.tls) : ServerCredentials.createInsecure();
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(o.listen, credentials, (err, p) => (err ? reject(new CpError('BAD_FLAGS', `--listen ${o.listen}: ${err.message}`)) : resolve(p)));
    });
    const host = o.listen.slice(0, o.listen.lastIndexOf(':')) || '127.0.0.1';
    const bound = `${host}:${port}`;
    this.address = o.advertise ?? bound;
    const replicaId = o.replicaId ?? `${os.hostname()}-${process.pid}`;
    const log = this.log.child({ replica: this.address });

    const store = new EtcdStore(createEtcdClient({ endpoints: o.etcd, callTimeoutMs: o.etcdTimeoutMs }), o.prefix, log, { livenessIntervalMs: 5_000 });
    this.store = store;
    await store.start();
    const session = new Session(store, o.leaseTtlSeconds, log);
    this.session = session;
    const election = new Election(store, session, { replicaId, address: this.address }, log, Math.max(1_000, (o.leaseTtlSeconds * 1000) / 2));
    this.election = election;
    session.on('alive', (leaseId) => {
      store.putReplica({ replicaId, address: this.address, version: VERSION, startedAtUnixMs: Date.now() }, leaseId).catch((err: unknown) => {
        log.warn({ err: String(err) }, 'cannot record this replica');
      });
    });
    const recorder = new NodeRecorder(store, session, this.address, log, { flushMs: 200, statusIntervalMs: 10_000 });
    this.recorder = recorder;
    const policy: AuthPolicy = { tls: o.tls !== null, adminToken: o.adminToken };
    const hub = new DiscoveryHub(store, new DesiredState(store, o.sealer, log), recorder, this.address, log, {
      policy,
      allowPlaintextSecrets: o.allowPlaintextSecrets,
    });
    this.hub = hub;
    const applier = new Applier(store, election, o.sealer, log, { historyLimit: o.historyLimit });
    server.addService(DiscoveryService, hub.service());
    server.addService(AdminService, adminService({ store, applier, recorder, policy, address: this.address, log }));
    const retention = new NodeRetention(store, election, () => recorder.local(), o.nodeRetentionMs, log);
    this.retention = retention;
    recorder.start();
    election.start();
    retention.start();
    log.info({ address: bound, advertise: this.address, replicaId, tls: policy.tls, version: VERSION }, 'listening');
    return bound;
  }

  /** Graceful: hand leadership over (revoke the lease), end streams, stop serving. */
  async stop(): Promise<void> {
    this.retention?.stop();
    this.hub?.closeAll();
    await this.recorder?.flush();
    this.recorder?.stop();
    await this.election?.stop();
    await this.session?.close();
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      const timer = setTimeout(() => {
        this.server?.forceShutdown();
        resolve();
      }, 3_000);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    await this.store?.close();
  }
}
