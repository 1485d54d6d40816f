/**
 * The data plane's control-plane client: one Discovery stream at a time to one of the listed replicas.
 *
 * Per resource kind it keeps the version in force and the last refused version. A push is validated with
 * the standalone schema, handed to the host and answered with an ACK, or refused with a NACK carrying the
 * field paths while the previous config stays in force. A refused version is answered from memory if it
 * comes again, never re-applied. Accepted versions go to the last-known-good store. When a stream ends
 * the agent waits (jittered exponential backoff) and tries the next address; serving never depends on
 * the stream being up.
 *
 * Everything that touches the host runs through one promise chain, so pushes, commands, SIGHUP and the
 * last-known-good boot never interleave.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import grpc from '@grpc/grpc-js';
import { ConfigError } from '@doorman/proto';
import {
  DiscoveryClient,
  ResourceType,
  type Command,
  type CommandResult,
  type ConfigPush,
  type ControlPlaneMessage,
  type DataPlaneMessage,
  type PoolStats,
  type SecretsPush,
} from '@doorman/proto/api';
import type { Logger } from 'pino';
import type { LoadedConfig } from '../config/load.js';
import { VERSION } from '../version.js';
import { Backoff } from './backoff.js';
import { buildConfig, NO_SECRETS, secretsOf, type Secrets } from './document.js';
import { AgentError, A } from './errors.js';
import type { AgentHost } from './host.js';
import type { AgentOptions } from './options.js';
import type { LastKnownGood, StateStore, StoredConfig } from './state-store.js';
import { wireStatusReport } from './status-report.js';

export enum AgentState {
  /** Created, start() not called yet. */
  Idle = 'idle',
  /** A stream is open and Hello sent; nothing heard back yet. */
  Connecting = 'connecting',
  /** The control plane has answered on the current stream. */
  Streaming = 'streaming',
  /** Waiting before the next connection attempt. */
  Backoff = 'backoff',
  Stopped = 'stopped',
}

const TRANSITIONS: Record<AgentState, readonly AgentState[]> = {
  [AgentState.Idle]: [AgentState.Connecting, AgentState.Stopped],
  [AgentState.Connecting]: [AgentState.Streaming, AgentState.Backoff, AgentState.Stopped],
  [AgentState.Streaming]: [AgentState.Backoff, AgentState.Stopped],
  [AgentState.Backoff]: [AgentState.Connecting, AgentState.Stopped],
  [AgentState.Stopped]: [],
};

type Stream = grpc.ClientDuplexStream<DataPlaneMessage, ControlPlaneMessage>;

interface Refused {
  version: number;
  detail: string;
}

/** Why a version could not be served, as sent in a NACK: one `path: message` line per problem. */
function describeFailure(err: unknown): string {
  if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`).join('\n');
  return err instanceof Error ? err.message : String(err);
}

export class Agent {
  private stateValue = AgentState.Idle;
  private readonly clients = new Map<string, DiscoveryClient>();
  private call: Stream | null = null;
  private address = '';
  private addressIndex = 0;
  private readonly backoff: Backoff;
  private retryTimer: NodeJS.Timeout | null = null;
  private statusTimer: NodeJS.Timeout | null = null;
  /** Serialises every host-facing step. */
  private work: Promise<void> = Promise.resolve();
  private config: StoredConfig | null = null;
  private secrets: Secrets = NO_SECRETS;
  private refusedConfig: Refused | null = null;
  private refusedSecrets: Refused | null = null;
  private drained = false;
  private configuredWaiters: (() => void)[] = [];

  constructor(
    private readonly opts: AgentOptions,
    private readonly log: Logger,
    private readonly host: AgentHost,
    private readonly store: StateStore | null,
  ) {
    this.backoff = new Backoff(opts.backoffInitialMs, opts.backoffMaxMs);
  }

  get state(): AgentState {
    return this.stateValue;
  }

  /** The config and secrets versions in force (0 = none). */
  get versions(): { config: number; secrets: number } {
    return { config: this.config?.version ?? 0, secrets: this.secrets.version };
  }

  /** The replica the current (or last) stream went to. */
  get currentAddress(): string {
    return this.address;
  }

  start(): void {
    this.connect();
  }

  /** Resolves true once a config is in force, false if none is within timeoutMs. */
  whenConfigured(timeoutMs: number): Promise<boolean> {
    if (this.config !== null) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.configuredWaiters = this.configuredWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      this.configuredWaiters.push(done);
    });
  }

  /**
   * Serves the last-known-good config unless the control plane got a config in first. Resolves true when
   * it is in force.
   */
  bootFrom(lkg: LastKnownGood): Promise<boolean> {
    return this.serialise(async () => {
      if (this.config !== null) return false;
      const secrets = lkg.secrets ?? NO_SECRETS;
      try {
        await this.applyToHost(buildConfig(lkg.config.documentJson, secrets, lkg.config.version, this.opts, this.warn));
      } catch (err) {
        this.log.error({ version: lkg.config.version, err: describeFailure(err) }, 'the last-known-good config cannot be served');
        return false;
      }
      this.config = lkg.config;
      this.secrets = secrets;
      this.log.warn({ configVersion: lkg.config.version, secretsVersion: secrets.version }, 'serving the last-known-good config; no control plane answered in time');
      this.configured();
      return true;
    });
  }

  /** SIGHUP, the admin console's RELOAD, the reload command: re-validate the current version (re-reads TLS files) and re-apply it. */
  reload(): Promise<CommandResult> {
    return this.serialise(async () => {
      if (this.config === null) return { commandId: '', ok: false, detail: 'no config received yet' };
      try {
        await this.applyToHost(buildConfig(this.config.documentJson, this.secrets, this.config.version, this.opts, this.warn));
      } catch (err) {
        const detail = describeFailure(err);
        this.log.error({ version: this.config.version, err: detail }, 'reload failed; keeping the current configuration');
        return { commandId: '', ok: false, detail };
      }
      return { commandId: '', ok: true, detail: `re-applied config version ${this.config.version}` };
    });
  }

  /** Closes the stream for good; the host keeps serving until the caller shuts it down. */
  stop(): void {
    if (this.stateValue === AgentState.Stopped) return;
    this.transition(AgentState.Stopped);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.stopStatus();
    const call = this.call;
    this.call = null;
    call?.cancel();
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  // ---- stream life cycle ----

  private transition(to: AgentState): void {
    const from = this.stateValue;
    if (!TRANSITIONS[from].includes(to)) throw new Error(`agent: illegal transition ${from} -> ${to}`);
    this.stateValue = to;
    this.log.debug({ from, to, address: this.address }, 'agent state');
  }

  private credentials(): grpc.ChannelCredentials {
    const tls = this.opts.tls;
    if (tls === null) return grpc.credentials.createInsecure();
    // Read at every (re)connect, so rotated certificates are picked up without a restart.
    return grpc.credentials.createSsl(readFileSync(tls.ca), readFileSync(tls.key), readFileSync(tls.cert));
  }

  private clientFor(address: string): DiscoveryClient {
    let client = this.clients.get(address);
    if (client === undefined) {
      client = new DiscoveryClient(address, this.credentials(), {
        // A half-dead connection (host gone, no RST) is noticed within about 15 s.
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
        'grpc.keepalive_permit_without_calls': 1,
        // The agent does its own backoff and failover between addresses.
        'grpc.initial_reconnect_backoff_ms': 250,
        'grpc.max_reconnect_backoff_ms': 2_000,
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
      });
      this.clients.set(address, client);
    }
    return client;
  }

  private connect(): void {
    const address = this.opts.addresses[this.addressIndex % this.opts.addresses.length];
    this.address = address;
    this.transition(AgentState.Connecting);
    let call: Stream;
    try {
      call = this.clientFor(address).stream();
    } catch (err) {
      // Unreadable TLS files: nothing to do on this address until they are fixed.
      this.log.error({ address, err: (err as Error).message }, 'cannot open a stream to the control plane');
      this.clients.delete(address);
      this.retry();
      return;
    }
    this.call = call;
    call.on('metadata', () => this.heard(call));
    call.on('data', (msg: ControlPlaneMessage) => this.onMessage(call, msg));
    call.on('error', (err: grpc.ServiceError) => this.onStreamEnd(call, err));
    call.on('end', () => this.onStreamEnd(call, null));
    const v = this.versions;
    call.write({
      hello: {
        node: { nodeId: this.opts.nodeId, labels: this.opts.labels, version: VERSION, hostname: os.hostname(), pid: process.pid },
        configVersion: v.config,
        secretsVersion: v.secrets,
        topologyVersion: 0,
      },
    });
    this.log.info({ address, configVersion: v.config, secretsVersion: v.secrets }, 'control-plane stream opened');
    this.startStatus(call);
  }

  /** The control plane answered on this stream: it counts as healthy, the backoff starts over. */
  private heard(call: Stream): void {
    if (call !== this.call || this.stateValue !== AgentState.Connecting) return;
    this.transition(AgentState.Streaming);
    this.backoff.reset();
    this.log.info({ address: this.address }, 'control plane connected');
  }

  private onStreamEnd(call: Stream, err: grpc.ServiceError | null): void {
    if (call !== this.call) return;
    this.call = null;
    this.stopStatus();
    call.cancel();
    const fields = { address: this.address, code: err?.code, err: err?.details ?? 'stream ended by the control plane' };
    this.log.warn(fields, 'control-plane stream closed; still serving the current config');
    // The next attempt goes to the next replica: the one that failed may be down for a while.
    this.addressIndex++;
    this.retry();
  }

  private retry(): void {
    if (this.stateValue === AgentState.Stopped) return;
    this.transition(AgentState.Backoff);
    const delay = this.backoff.next();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.stateValue === AgentState.Backoff) this.connect();
    }, delay);
  }

  private startStatus(call: Stream): void {
    this.stopStatus();
    void this.sendStatus(call);
    this.statusTimer = setInterval(() => void this.sendStatus(call), this.opts.statusIntervalMs);
  }

  private stopStatus(): void {
    if (this.statusTimer !== null) clearInterval(this.statusTimer);
    this.statusTimer = null;
  }

  private async sendStatus(call: Stream): Promise<void> {
    let pools: PoolStats[];
    try {
      pools = await this.host.poolStats();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot collect pool figures');
      pools = [];
    }
    const v = this.versions;
    this.send(call, {
      status: wireStatusReport({
        configVersion: v.config,
        secretsVersion: v.secrets,
        clients: this.host.clientCount(),
        servers: this.host.serverCount(),
        workers: this.host.workerCount(),
        uptimeSeconds: process.uptime(),
        pools,
      }),
    });
  }

  /** Replies go only to the stream the push came on; after a reconnect, Hello carries the versions instead. */
  private send(call: Stream, msg: DataPlaneMessage): void {
    if (call !== this.call) return;
    call.write(msg);
  }

  // ---- pushes ----

  private onMessage(call: Stream, msg: ControlPlaneMessage): void {
    this.heard(call);
    if (msg.config !== undefined) {
      const push = msg.config;
      void this.serialise(() => this.onConfig(call, push));
    } else if (msg.secrets !== undefined) {
      const push = msg.secrets;
      void this.serialise(() => this.onSecrets(call, push));
    } else if (msg.topology !== undefined) {
      // No topology consumer yet: acknowledge so the control plane does not wait on this node.
      this.send(call, { ack: { type: ResourceType.RESOURCE_TYPE_TOPOLOGY, nonce: msg.topology.nonce, version: msg.topology.version } });
    } else if (msg.command !== undefined) {
      this.onCommand(call, msg.command);
    }
  }

  private async onConfig(call: Stream, push: ConfigPush): Promise<void> {
    const type = ResourceType.RESOURCE_TYPE_CONFIG;
    const { version, nonce } = push;
    const ack = (): void => this.send(call, { ack: { type, nonce, version } });
    const nack = (detail: string): void =>
      this.send(call, { nack: { type, nonce, rejectedVersion: version, keptVersion: this.config?.version ?? 0, errorDetail: detail } });
    if (this.config?.version === version) return ack();
    if (this.refusedConfig?.version === version) return nack(this.refusedConfig.detail);
    try {
      if (this.drained) throw new AgentError(A.drained, 'this node has been drained; restart it to serve again');
      await this.applyToHost(buildConfig(push.documentJson, this.secrets, version, this.opts, this.warn));
    } catch (err) {
      const detail = describeFailure(err);
      this.refusedConfig = { version, detail };
      this.log.error({ version, kept: this.config?.version ?? 0, err: detail }, 'config refused (NACK); keeping the previous one');
      return nack(detail);
    }
    this.config = { version, documentJson: push.documentJson };
    this.refusedConfig = null;
    this.persist(() => this.store?.saveConfig({ version, documentJson: push.documentJson }));
    this.log.info({ version }, 'config applied (ACK)');
    ack();
    this.configured();
  }

  private async onSecrets(call: Stream, push: SecretsPush): Promise<void> {
    const type = ResourceType.RESOURCE_TYPE_SECRETS;
    const { version, nonce } = push;
    const ack = (): void => this.send(call, { ack: { type, nonce, version } });
    const nack = (detail: string): void =>
      this.send(call, { nack: { type, nonce, rejectedVersion: version, keptVersion: this.secrets.version, errorDetail: detail } });
    if (this.secrets.version === version && version !== 0) return ack();
    if (this.refusedSecrets?.version === version) return nack(this.refusedSecrets.detail);
    const next = secretsOf(push);
    // Without a config the secrets are only kept; they are checked when a config arrives.
    if (this.config !== null) {
      try {
        if (this.drained) throw new AgentError(A.drained, 'this node has been drained; restart it to serve again');
        await this.applyToHost(buildConfig(this.config.documentJson, next, this.config.version, this.opts, this.warn));
      } catch (err) {
        const detail = describeFailure(err);
        this.refusedSecrets = { version, detail };
        this.log.error({ version, kept: this.secrets.version, err: detail }, 'secrets refused (NACK); keeping the previous ones');
        return nack(detail);
      }
    }
    this.secrets = next;
    this.refusedSecrets = null;
    this.persist(() => this.store?.saveSecrets(next));
    this.log.info({ version }, 'secrets applied (ACK)');
    ack();
  }

  private onCommand(call: Stream, cmd: Command): void {
    const reply = (r: Omit<CommandResult, 'commandId'>): void => this.send(call, { commandResult: { ok: r.ok, detail: r.detail, commandId: cmd.commandId } });
    if (cmd.reload !== undefined) {
      void this.reload().then((r) => reply(r));
    } else if (cmd.drain !== undefined) {
      const timeoutMs = cmd.drain.timeoutSeconds * 1000;
      // Not serialised: a drain can take minutes and must not hold up the replies to pushes meanwhile.
      this.drained = true;
      this.log.warn({ timeoutMs }, 'draining on control-plane command');
      this.host.drain(timeoutMs).then(
        () => reply({ ok: true, detail: 'drained: every client has left' }),
        (err: unknown) => reply({ ok: false, detail: describeFailure(err) }),
      );
    } else if (cmd.upgrade !== undefined) {
      reply({ ok: false, detail: 'binary upgrade is not supported yet' });
    } else {
      reply({ ok: false, detail: 'unknown command' });
    }
  }

  // ---- helpers ----

  private readonly warn = (path: string, message: string): void => {
    this.log.warn({ path }, message);
  };

  private async applyToHost(loaded: LoadedConfig): Promise<void> {
    try {
      await this.host.apply(loaded);
    } catch (err) {
      if (err instanceof ConfigError || err instanceof AgentError) throw err;
      throw new AgentError(A.hostRefused, `the data plane refused the config: ${(err as Error).message}`);
    }
  }

  /** A failed write leaves the older last-known-good in place; serving goes on. */
  private persist(write: () => void): void {
    try {
      write();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'cannot save the last-known-good state');
    }
  }

  private configured(): void {
    const waiters = this.configuredWaiters;
    this.configuredWaiters = [];
    for (const w of waiters) w();
  }

  private serialise<T>(step: () => Promise<T>): Promise<T> {
    const result = this.work.then(step);
    this.work = result.then(
      () => undefined,
      (err: unknown) => this.log.error({ err: (err as Error).message }, 'agent step failed'),
    );
    return result;
  }
}
