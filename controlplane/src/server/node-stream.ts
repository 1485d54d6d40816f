/**
 * The control plane's side of one data plane's Discovery stream, as a state machine with no I/O:
 * messages in, pushes out through `send`. Rules (from Envoy xDS and its users' bug reports):
 * every push carries a version and a fresh nonce; a reply whose nonce is not the latest sent for that
 * kind is stale and ignored; a NACKed version is never pushed again to the node (only a newer one);
 * secrets go before config, so a config naming a new user finds its password already there.
 */
import {
  ResourceType,
  type ControlPlaneMessage,
  type DataPlaneMessage,
  type NodeIdentity,
  type SecretsPush,
  type StatusReport,
} from '@doorman/proto/api';

export const enum StreamState {
  AwaitingHello = 'awaiting-hello',
  Active = 'active',
  Closed = 'closed',
}

export interface ResourceTrack {
  /** Last version pushed (or reported by Hello). */
  sent: number;
  /** Nonce of the last push; '' before any. */
  nonce: string;
  acked: number;
  /** Last NACKed version, 0 when the last reply was an ACK. */
  nacked: number;
  nackError: string;
}

export interface Desired {
  config: { version: number; documentJson: string } | null;
  secrets: { version: number; build: () => Omit<SecretsPush, 'nonce' | 'version'> } | null;
}

export type StreamEvent =
  | { kind: 'hello'; node: NodeIdentity }
  | { kind: 'acked'; type: ResourceType; version: number }
  | { kind: 'nacked'; type: ResourceType; version: number; detail: string }
  | { kind: 'status'; report: StatusReport }
  | { kind: 'ignored'; reason: string }
  | { kind: 'protocol-error'; reason: string };

export interface StreamIo {
  send(message: ControlPlaneMessage): void;
  nonce(): string;
  /** False on a plaintext stream without --allow-plaintext-secrets. */
  secretsAllowed: boolean;
}

function track(): ResourceTrack {
  return { sent: 0, nonce: '', acked: 0, nacked: 0, nackError: '' };
}

export class NodeStream {
  private stateValue: StreamState = StreamState.AwaitingHello;
  node: NodeIdentity | null = null;
  readonly config: ResourceTrack = track();
  readonly secrets: ResourceTrack = track();
  /** Set once when secrets were withheld because the stream is plaintext. */
  secretsWithheld = false;

  constructor(private readonly io: StreamIo) {}

  get state(): StreamState {
    return this.stateValue;
  }

  close(): void {
    this.stateValue = StreamState.Closed;
  }

  /**
   * Handles one message. `previous` is what the fleet remembers of this node (a NACK from an earlier
   * stream), so a reconnect does not re-send the version it already refused.
   */
  receive(msg: DataPlaneMessage, previous?: { nackedConfig: number; nackError: string }): StreamEvent {
    if (this.stateValue === StreamState.Closed) return { kind: 'ignored', reason: 'stream closed' };
    if (this.stateValue === StreamState.AwaitingHello) {
      const hello = msg.hello;
      if (!hello) return { kind: 'protocol-error', reason: 'the first message must be Hello' };
      if (!hello.node?.nodeId) return { kind: 'protocol-error', reason: 'Hello.node.node_id is required' };
      this.node = hello.node;
      this.config.sent = this.config.acked = hello.configVersion;
      this.secrets.sent = this.secrets.acked = hello.secretsVersion;
      if (previous && previous.nackedConfig > hello.configVersion) {
        this.config.nacked = previous.nackedConfig;
        this.config.nackError = previous.nackError;
      }
      this.stateValue = StreamState.Active;
      return { kind: 'hello', node: hello.node };
    }
    if (msg.hello) return { kind: 'protocol-error', reason: 'Hello sent twice on one stream' };
    if (msg.ack) {
      const t = this.trackOf(msg.ack.type);
      if (!t) return { kind: 'ignored', reason: `ACK for unknown resource type ${msg.ack.type}` };
      if (msg.ack.nonce !== t.nonce) return { kind: 'ignored', reason: 'stale nonce' };
      t.acked = msg.ack.version;
      t.nacked = 0;
      t.nackError = '';
      return { kind: 'acked', type: msg.ack.type, version: msg.ack.version };
    }
    if (msg.nack) {
      const t = this.trackOf(msg.nack.type);
      if (!t) return { kind: 'ignored', reason: `NACK for unknown resource type ${msg.nack.type}` };
      if (msg.nack.nonce !== t.nonce) return { kind: 'ignored', reason: 'stale nonce' };
      t.acked = msg.nack.keptVersion;
      t.nacked = msg.nack.rejectedVersion;
      t.nackError = msg.nack.errorDetail;
      return { kind: 'nacked', type: msg.nack.type, version: msg.nack.rejectedVersion, detail: msg.nack.errorDetail };
    }
    if (msg.status) return { kind: 'status', report: msg.status };
    if (msg.commandResult) return { kind: 'ignored', reason: 'command results are not tracked yet' };
    return { kind: 'ignored', reason: 'empty message' };
  }

  /** Pushes whatever the node does not have yet; returns how many pushes went out. */
  sync(desired: Desired): number {
    if (this.stateValue !== StreamState.Active) return 0;
    let pushes = 0;
    const s = desired.secrets;
    if (s && s.version !== this.secrets.sent && s.version !== this.secrets.nacked) {
      if (this.io.secretsAllowed) {
        const nonce = this.io.nonce();
        this.secrets.sent = s.version;
        this.secrets.nonce = nonce;
        this.io.send({ secrets: { ...s.build(), version: s.version, nonce } });
        pushes++;
      } else {
        this.secretsWithheld = true;
      }
    }
    const c = desired.config;
    if (c && c.version !== this.config.sent && c.version !== this.config.nacked) {
      const nonce = this.io.nonce();
      this.config.sent = c.version;
      this.config.nonce = nonce;
      this.io.send({ config: { version: c.version, nonce, documentJson: c.documentJson } });
      pushes++;
    }
    return pushes;
  }

  private trackOf(type: ResourceType): ResourceTrack | null {
    if (type === ResourceType.RESOURCE_TYPE_CONFIG) return this.config;
    if (type === ResourceType.RESOURCE_TYPE_SECRETS) return this.secrets;
    return null;
  }
}
