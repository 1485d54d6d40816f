/**
 * doorman-controlplane replicas for tests: TLS material (a dev CA, a server certificate and client
 * certificates for data planes and doormanctl), an admin token and a secrets key in a temp dir, one
 * process per replica against a running etcd, and gRPC clients of the real API pointed at it.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  credentials as grpcCredentials,
  Metadata,
  type ChannelCredentials,
  type ClientDuplexStream,
  type ClientOptions,
  type ServiceError,
} from '@grpc/grpc-js';
import {
  AdminClient,
  ApplyRequest,
  DataPlaneMessage,
  DeleteRequest,
  DiffRequest,
  DiscoveryClient,
  GetRequest,
  HistoryRequest,
  NodesRequest,
  ResourceType,
  RollbackRequest,
  StatsRequest,
  StatusRequest,
  type ApplyResponse,
  type ControlPlaneMessage,
  type DiffResponse,
  type GetResponse,
  type HistoryResponse,
  type NodesResponse,
  type SecretsPush,
  type StatsResponse,
  type StatusResponse,
} from '@doorman/proto/api';
import { REPO_ROOT } from './doorman.js';
import {
  makeTempDir,
  runChecked,
  startProcess,
  type ExitInfo,
  type ManagedProcess,
  type OutputStream,
} from './processes.js';
import { makeTestCerts, type TestCerts } from './tls.js';

/** The control plane entry point; DOORMAN_CONTROLPLANE_CLI in the environment points the suite at another build. */
export const CONTROLPLANE_CLI = process.env.DOORMAN_CONTROLPLANE_CLI ?? path.join(REPO_ROOT, 'controlplane', 'dist', 'main.js');

export interface ClientCert {
  cert: string;
  key: string;
}

/** Everything a secure control plane, its data planes and doormanctl need, as file paths. */
export interface ControlPlaneSecurity {
  dir: string;
  certs: TestCerts;
  /** Client certificate for data planes (CN=doorman-dataplane). */
  dataPlane: ClientCert;
  /** Client certificate for doormanctl (CN=doormanctl). */
  admin: ClientCert;
  adminToken: string;
  adminTokenFile: string;
  /** 32 random bytes, hex, for --secrets-key-file. */
  secretsKeyFile: string;
  remove(): Promise<void>;
}

/** Issues a client certificate (extendedKeyUsage=clientAuth) from the CA in `certs`. */
export async function makeClientCert(certs: TestCerts, name: string): Promise<ClientCert> {
  const out: ClientCert = { cert: path.join(certs.dir, `${name}.crt`), key: path.join(certs.dir, `${name}.key`) };
  const csr = path.join(certs.dir, `${name}.csr`);
  const ext = path.join(certs.dir, `${name}.ext`);
  const opts = { cwd: certs.dir, timeoutMs: 30_000 };
  await runChecked('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-keyout', out.key, '-out', csr, '-subj', `/CN=${name}`], opts);
  await writeFile(ext, 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n');
  await runChecked('openssl', [
    'x509', '-req', '-in', csr, '-CA', certs.caCert, '-CAkey', certs.caKey,
    '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '3650', '-sha256', '-extfile', ext, '-out', out.cert,
  ], opts);
  await rm(csr, { force: true });
  await rm(ext, { force: true });
  await chmod(out.key, 0o600);
  return out;
}

/** A fresh dev CA, server certificate (127.0.0.1/localhost), two client certificates, an admin token and a secrets key. */
export async function makeControlPlaneSecurity(): Promise<ControlPlaneSecurity> {
  const tempDir = await makeTempDir('doorman-cp-tls', { forServiceUser: false });
  try {
    const certs = await makeTestCerts(tempDir.path);
    const dataPlane = await makeClientCert(certs, 'doorman-dataplane');
    const admin = await makeClientCert(certs, 'doormanctl');
    const adminToken = randomBytes(24).toString('hex');
    const adminTokenFile = path.join(tempDir.path, 'admin.token');
    await writeFile(adminTokenFile, `${adminToken}\n`, { mode: 0o600 });
    const secretsKeyFile = path.join(tempDir.path, 'secrets.key');
    await writeFile(secretsKeyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    return { dir: tempDir.path, certs, dataPlane, admin, adminToken, adminTokenFile, secretsKeyFile, remove: () => tempDir.remove() };
  } catch (err) {
    await tempDir.remove();
    throw err;
  }
}

export interface StartControlPlaneOptions {
  /** etcd client endpoints (host:port). */
  etcd: string | readonly string[];
  /** TLS + token + secrets key; without it the replica runs with --insecure --insecure-dev-secrets. */
  security?: ControlPlaneSecurity;
  /** With security unset: also pass --allow-plaintext-secrets (secrets pushed on plaintext streams). */
  allowPlaintextSecrets?: boolean;
  /** Key prefix in etcd; default /doorman/. Give each test its own to share one etcd. */
  prefix?: string;
  /** Leader lease TTL in seconds (--lease-ttl); default the CLI's. */
  leaseTtl?: number;
  /** History entries kept (--history). */
  history?: number;
  /** Replica id (--replica-id); default the CLI's (host:pid). */
  replicaId?: string;
  /** Appended verbatim. */
  extraArgs?: readonly string[];
  env?: Record<string, string | undefined>;
  onLine?: (line: string, stream: OutputStream) => void;
  keepAlive?: boolean;
  /** Until the "listening" log line. Default 20 s. */
  readyTimeoutMs?: number;
}

export class ControlPlaneProcess {
  readonly process: ManagedProcess;
  /** The bound host:port from the "listening" log line. */
  readonly address: string;
  readonly security: ControlPlaneSecurity | undefined;
  readonly args: readonly string[];

  constructor(proc: ManagedProcess, address: string, security: ControlPlaneSecurity | undefined, args: readonly string[]) {
    this.process = proc;
    this.address = address;
    this.security = security;
    this.args = args;
  }

  get host(): string {
    return this.address.slice(0, this.address.lastIndexOf(':'));
  }

  get port(): number {
    return Number(this.address.slice(this.address.lastIndexOf(':') + 1));
  }

  get pid(): number {
    return this.process.pid;
  }

  get running(): boolean {
    return this.process.running;
  }

  get exited(): Promise<ExitInfo> {
    return this.process.exited;
  }

  logs(): string[] {
    return this.process.lines();
  }

  /** The captured lines that parse as JSON objects (pino logs one per line). */
  jsonLogs(): Record<string, unknown>[] {
    return this.process.jsonLines();
  }

  output(maxLines = 60): string {
    return this.process.output(maxLines);
  }

  waitForLog(match: RegExp | ((line: string) => boolean), timeoutMs = 10_000): Promise<string> {
    return this.process.waitForLine(match, timeoutMs);
  }

  /** Channel credentials: TLS with the given client certificate (default doormanctl's), or insecure. */
  channelCredentials(client: ClientCert | null = this.security?.admin ?? null): ChannelCredentials {
    return channelCredentialsFor(this.security, client);
  }

  /** Admin metadata with the bearer token (empty without security). */
  adminMetadata(): Metadata {
    return adminMetadataFor(this.security);
  }

  /** An Admin client; pass `withClientCert: false` to authenticate by token only. */
  adminClient(options: { withClientCert?: boolean; clientOptions?: ClientOptions } = {}): AdminClient {
    const client = options.withClientCert === false ? null : (this.security?.admin ?? null);
    return new AdminClient(this.address, this.channelCredentials(client), options.clientOptions ?? {});
  }

  /** A Discovery client presenting the data-plane client certificate (insecure without security). */
  discoveryClient(clientOptions: ClientOptions = {}): DiscoveryClient {
    return new DiscoveryClient(this.address, this.channelCredentials(this.security?.dataPlane ?? null), clientOptions);
  }

  /** SIGTERM (graceful: revokes its leases), SIGKILL after `timeoutMs`. */
  stop(timeoutMs = 10_000): Promise<ExitInfo> {
    return this.process.stop({ signal: 'SIGTERM', timeoutMs });
  }

  /** SIGKILL: leases lapse after their TTL, as when a host dies. */
  kill(): Promise<ExitInfo> {
    return this.process.stop({ signal: 'SIGKILL', timeoutMs: 10_000 });
  }
}

export function channelCredentialsFor(security: ControlPlaneSecurity | undefined, client: ClientCert | null): ChannelCredentials {
  if (!security) return grpcCredentials.createInsecure();
  const ca = readFileSync(security.certs.caCert);
  if (!client) return grpcCredentials.createSsl(ca);
  return grpcCredentials.createSsl(ca, readFileSync(client.key), readFileSync(client.cert));
}

export function adminMetadataFor(security: ControlPlaneSecurity | undefined): Metadata {
  const md = new Metadata();
  if (security) md.set('authorization', `Bearer ${security.adminToken}`);
  return md;
}

/** The command line startControlPlane() uses (without the node executable). */
export function controlPlaneArgs(options: StartControlPlaneOptions): string[] {
  const etcd = typeof options.etcd === 'string' ? options.etcd : options.etcd.join(',');
  const args = [CONTROLPLANE_CLI, '--etcd', etcd, '--listen', '127.0.0.1:0'];
  const s = options.security;
  if (s) {
    args.push('--tls-cert', s.certs.serverCert, '--tls-key', s.certs.serverKey, '--tls-client-ca', s.certs.caCert);
    args.push('--admin-token-file', s.adminTokenFile, '--secrets-key-file', s.secretsKeyFile);
  } else {
    args.push('--insecure', '--insecure-dev-secrets');
    if (options.allowPlaintextSecrets) args.push('--allow-plaintext-secrets');
  }
  if (options.prefix !== undefined) args.push('--prefix', options.prefix);
  if (options.leaseTtl !== undefined) args.push('--lease-ttl', String(options.leaseTtl));
  if (options.history !== undefined) args.push('--history', String(options.history));
  if (options.replicaId !== undefined) args.push('--replica-id', options.replicaId);
  args.push(...(options.extraArgs ?? []));
  return args;
}

/**
 * Starts `node controlplane/dist/main.js --listen 127.0.0.1:0 ...` and resolves with the address from
 * its "listening" log line.
 */
export async function startControlPlane(options: StartControlPlaneOptions): Promise<ControlPlaneProcess> {
  const args = controlPlaneArgs(options);
  const child = startProcess(process.execPath, args, {
    name: `doorman-controlplane${options.replicaId ? `:${options.replicaId}` : ''}`,
    cwd: REPO_ROOT,
    env: options.env ?? {},
    ringSize: 20_000,
    ...(options.onLine ? { onLine: options.onLine } : {}),
    ...(options.keepAlive ? { keepAlive: true } : {}),
  });
  try {
    const line = await child.waitForLine((l) => l.includes('"msg":"listening"'), options.readyTimeoutMs ?? 20_000);
    const address = (JSON.parse(line) as { address?: unknown }).address;
    if (typeof address !== 'string') throw new Error(`"listening" line without an address: ${line}`);
    return new ControlPlaneProcess(child, address, options.security, args);
  } catch (err) {
    if (child.running) await child.stop({ signal: 'SIGKILL', timeoutMs: 5_000 });
    throw new Error(`doorman-controlplane did not start: ${err instanceof Error ? err.message : String(err)}\n${child.output()}`);
  }
}

type AdminMethod = 'apply' | 'diff' | 'get' | 'history' | 'rollback' | 'delete' | 'status' | 'nodes' | 'stats';
type RequestOf<M extends AdminMethod> = Parameters<AdminClient[M]>[0];
interface AdminResponses {
  apply: ApplyResponse;
  diff: DiffResponse;
  get: GetResponse;
  history: HistoryResponse;
  rollback: ApplyResponse;
  delete: ApplyResponse;
  status: StatusResponse;
  nodes: NodesResponse;
  stats: StatsResponse;
}
type ResponseOf<M extends AdminMethod> = AdminResponses[M];

const REQUEST_TYPES = {
  apply: ApplyRequest,
  diff: DiffRequest,
  get: GetRequest,
  history: HistoryRequest,
  rollback: RollbackRequest,
  delete: DeleteRequest,
  status: StatusRequest,
  nodes: NodesRequest,
  stats: StatsRequest,
} as const;

/** One Admin call as a promise; the request may be partial (defaults filled). Rejects with the grpc ServiceError. */
export function adminCall<M extends AdminMethod>(
  client: AdminClient,
  method: M,
  request: Partial<RequestOf<M>>,
  metadata: Metadata = new Metadata(),
  timeoutMs = 10_000,
): Promise<ResponseOf<M>> {
  const full = (REQUEST_TYPES[method] as { fromPartial(p: object): RequestOf<M> }).fromPartial(request);
  return new Promise((resolve, reject) => {
    const fn = client[method].bind(client) as unknown as (
      req: RequestOf<M>,
      md: Metadata,
      options: { deadline: number },
      cb: (err: ServiceError | null, res: ResponseOf<M>) => void,
    ) => void;
    fn(full, metadata, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

export interface SimulatedDataPlaneOptions {
  nodeId: string;
  labels?: Record<string, string>;
  /** Answer pushes with NACK instead of ACK when this returns a reason. */
  refuse?: (push: { kind: 'config' | 'secrets'; version: number; body: string }) => string | null;
}

/**
 * A lightweight data plane: opens the Discovery stream with the real proto, says Hello and ACKs (or
 * NACKs) every push. Records when each config version was acknowledged.
 */
export class SimulatedDataPlane {
  readonly nodeId: string;
  configVersion = 0;
  secretsVersion = 0;
  lastConfig = '';
  lastSecrets: SecretsPush | null = null;
  /** config version -> Date.now() when its ACK was written. */
  readonly ackedAt = new Map<number, number>();
  ended: ServiceError | null = null;
  private call: ClientDuplexStream<DataPlaneMessage, ControlPlaneMessage> | null = null;
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly client: DiscoveryClient,
    private readonly options: SimulatedDataPlaneOptions,
  ) {
    this.nodeId = options.nodeId;
  }

  connect(): void {
    const call = this.client.stream();
    this.call = call;
    this.ended = null;
    call.on('data', (msg: ControlPlaneMessage) => this.onPush(msg));
    call.on('error', (err: ServiceError) => {
      this.ended = err;
      this.notify();
    });
    call.on('end', () => this.notify());
    call.write(
      DataPlaneMessage.fromPartial({
        hello: {
          node: { nodeId: this.nodeId, labels: this.options.labels ?? {}, version: 'sim', hostname: 'sim', pid: process.pid },
          configVersion: this.configVersion,
          secretsVersion: this.secretsVersion,
        },
      }),
    );
  }

  report(status: Partial<DataPlaneMessage['status']>): void {
    this.call?.write(DataPlaneMessage.fromPartial({ status: status ?? {} }));
  }

  close(): void {
    this.call?.cancel();
    this.call = null;
  }

  /** Resolves once the node runs config version >= `version`. */
  waitForConfig(version: number, timeoutMs: number): Promise<void> {
    return this.waitFor(() => this.configVersion >= version, timeoutMs, `${this.nodeId}: config ${version}`);
  }

  waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!cond()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (now config ${this.configVersion}, stream ${this.ended?.message ?? 'open'})`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  private onPush(msg: ControlPlaneMessage): void {
    const call = this.call;
    if (!call) return;
    if (msg.secrets) {
      const reason = this.options.refuse?.({ kind: 'secrets', version: msg.secrets.version, body: JSON.stringify(msg.secrets) }) ?? null;
      if (reason === null) {
        this.secretsVersion = msg.secrets.version;
        this.lastSecrets = msg.secrets;
        call.write(DataPlaneMessage.fromPartial({ ack: { type: ResourceType.RESOURCE_TYPE_SECRETS, nonce: msg.secrets.nonce, version: msg.secrets.version } }));
      } else {
        call.write(DataPlaneMessage.fromPartial({ nack: { type: ResourceType.RESOURCE_TYPE_SECRETS, nonce: msg.secrets.nonce, rejectedVersion: msg.secrets.version, keptVersion: this.secretsVersion, errorDetail: reason } }));
      }
    }
    if (msg.config) {
      const reason = this.options.refuse?.({ kind: 'config', version: msg.config.version, body: msg.config.documentJson }) ?? null;
      if (reason === null) {
        this.configVersion = msg.config.version;
        this.lastConfig = msg.config.documentJson;
        call.write(DataPlaneMessage.fromPartial({ ack: { type: ResourceType.RESOURCE_TYPE_CONFIG, nonce: msg.config.nonce, version: msg.config.version } }));
        this.ackedAt.set(msg.config.version, Date.now());
      } else {
        call.write(DataPlaneMessage.fromPartial({ nack: { type: ResourceType.RESOURCE_TYPE_CONFIG, nonce: msg.config.nonce, rejectedVersion: msg.config.version, keptVersion: this.configVersion, errorDetail: reason } }));
      }
    }
    this.notify();
  }
}
