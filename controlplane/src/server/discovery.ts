import { randomBytes } from 'node:crypto';
import { status, type ServerDuplexStream } from '@grpc/grpc-js';
import type { ControlPlaneMessage, DataPlaneMessage, DiscoveryServer, PoolStats } from '@doorman/proto/api';
import { ResourceType } from '@doorman/proto/api';
import type { Logger } from 'pino';
import { toServiceError } from '../errors.js';
import type { DesiredState } from '../fleet/desired.js';
import type { NodeRecorder } from '../fleet/recorder.js';
import type { NodeRecord, PoolStatsRecord, Store } from '../store/store.js';
import { authorizeDataPlane, type AuthPolicy } from './auth.js';
import { NodeStream, StreamState, type StreamEvent } from './node-stream.js';

type Call = ServerDuplexStream<DataPlaneMessage, ControlPlaneMessage>;

interface Attached {
  call: Call;
  stream: NodeStream;
  record: NodeRecord;
}

export interface DiscoveryOptions {
  policy: AuthPolicy;
  /** Push secrets on plaintext streams too (--allow-plaintext-secrets, local development only). */
  allowPlaintextSecrets: boolean;
}

function poolRecord(p: PoolStats): PoolStatsRecord {
  return { ...p };
}

/**
 * The Discovery service: one NodeStream per data plane, pushes whenever the store's generation moves,
 * node records through the recorder. A node that opens a second stream to this replica replaces the first.
 */
export class DiscoveryHub {
  private readonly attached = new Map<string, Attached>();
  private nonceCounter = 0;
  private readonly noncePrefix = randomBytes(4).toString('hex');
  private readonly unsubscribe: () => void;

  constructor(
    private readonly store: Store,
    private readonly desired: DesiredState,
    private readonly recorder: NodeRecorder,
    private readonly address: string,
    private readonly log: Logger,
    private readonly options: DiscoveryOptions,
  ) {
    this.unsubscribe = store.onChange((sections) => {
      if (sections.has('config') || sections.has('secrets')) this.syncAll();
    });
  }

  get size(): number {
    return this.attached.size;
  }

  service(): DiscoveryServer {
    return { stream: (call: Call) => this.handle(call) };
  }

  /** Ends every stream (shutdown): data planes reconnect to another replica. */
  closeAll(): void {
    this.unsubscribe();
    for (const a of [...this.attached.values()]) {
      a.call.emit('error', { code: status.UNAVAILABLE, details: 'control-plane replica shutting down' });
    }
  }

  private syncAll(): void {
    const desired = this.desired.current();
    for (const a of this.attached.values()) a.stream.sync(desired);
  }

  private nonce(): string {
    this.nonceCounter++;
    return `${this.noncePrefix}-${this.nonceCounter.toString(36)}`;
  }

  private handle(call: Call): void {
    try {
      authorizeDataPlane(call, this.options.policy);
    } catch (err) {
      call.emit('error', toServiceError(err));
      return;
    }
    const tls = this.options.policy.tls;
    const stream = new NodeStream({
      send: (message) => call.write(message),
      nonce: () => this.nonce(),
      secretsAllowed: tls || this.options.allowPlaintextSecrets,
    });
    let attached: Attached | null = null;
    const peer = call.getPeer();

    call.on('data', (msg: DataPlaneMessage) => {
      const previous = msg.hello?.node?.nodeId ? this.store.view().nodes.get(msg.hello.node.nodeId) : undefined;
      const event = stream.receive(msg, previous ? { nackedConfig: previous.nackedVersion, nackError: previous.nackError } : undefined);
      if (event.kind === 'protocol-error') {
        this.log.warn({ peer, reason: event.reason }, 'discovery protocol error');
        call.emit('error', { code: status.INVALID_ARGUMENT, details: event.reason });
        stream.close();
        return;
      }
      if (event.kind === 'hello') {
        attached = this.attach(call, stream);
        return;
      }
      if (attached) this.onEvent(attached, event);
    });
    const finish = (why: string): void => {
      if (stream.state === StreamState.Closed && attached === null) return;
      stream.close();
      if (attached) this.detach(attached, why);
      attached = null;
    };
    call.on('end', () => {
      finish('stream ended');
      call.end();
    });
    call.on('error', (err: Error) => finish(`stream error: ${err.message}`));
    call.on('cancelled', () => finish('stream cancelled'));
    call.on('close', () => finish('stream closed'));
  }

  private attach(call: Call, stream: NodeStream): Attached {
    const node = stream.node;
    if (!node) throw new Error('attach before Hello');
    const old = this.attached.get(node.nodeId);
    if (old) {
      old.stream.close();
      old.call.emit('error', { code: status.ALREADY_EXISTS, details: 'replaced by a newer stream from the same node_id' });
    }
    const record: NodeRecord = {
      nodeId: node.nodeId,
      labels: { ...node.labels },
      version: node.version,
      hostname: node.hostname,
      pid: node.pid,
      connected: true,
      lastSeenUnixMs: Date.now(),
      ackedConfigVersion: stream.config.acked,
      ackedSecretsVersion: stream.secrets.acked,
      nackedVersion: stream.config.nacked,
      nackError: stream.config.nackError,
      attachedTo: this.address,
      clients: 0,
      servers: 0,
      pools: [],
    };
    const a: Attached = { call, stream, record };
    this.attached.set(node.nodeId, a);
    this.recorder.attach(record);
    this.log.info({ nodeId: node.nodeId, labels: node.labels, version: node.version, configVersion: stream.config.acked }, 'data plane attached');
    stream.sync(this.desired.current());
    if (stream.secretsWithheld) {
      this.log.warn({ nodeId: node.nodeId }, 'secrets withheld: plaintext stream (start with TLS, or --allow-plaintext-secrets for local development)');
    }
    return a;
  }

  private onEvent(a: Attached, event: StreamEvent): void {
    const now = Date.now();
    const base: NodeRecord = { ...a.record, lastSeenUnixMs: now };
    switch (event.kind) {
      case 'acked':
      case 'nacked': {
        a.record = {
          ...base,
          ackedConfigVersion: a.stream.config.acked,
          ackedSecretsVersion: a.stream.secrets.acked,
          nackedVersion: Math.max(a.stream.config.nacked, a.stream.secrets.nacked),
          nackError: a.stream.config.nackError || a.stream.secrets.nackError,
        };
        if (event.kind === 'nacked') {
          this.log.warn({ nodeId: a.record.nodeId, type: ResourceType[event.type], version: event.version, detail: event.detail }, 'data plane NACKed a push');
        }
        this.recorder.update(a.record, true);
        return;
      }
      case 'status': {
        const r = event.report;
        a.record = { ...base, clients: r.clients, servers: r.servers, pools: r.pools.map(poolRecord) };
        this.recorder.update(a.record, false);
        return;
      }
      case 'ignored':
        this.log.debug({ nodeId: a.record.nodeId, reason: event.reason }, 'discovery message ignored');
        a.record = base;
        this.recorder.update(a.record, false);
        return;
      default:
        return;
    }
  }

  private detach(a: Attached, why: string): void {
    if (this.attached.get(a.record.nodeId) !== a) return;
    this.attached.delete(a.record.nodeId);
    const record: NodeRecord = { ...a.record, connected: false, lastSeenUnixMs: Date.now() };
    this.recorder.detach(record);
    this.log.info({ nodeId: record.nodeId, why }, 'data plane detached');
  }
}
