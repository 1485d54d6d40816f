/**
 * doormanctl's view of the Admin service, and its gRPC implementation over a list of replicas.
 *
 * A call goes to the first replica that answers. A replica that cannot be reached is skipped; a follower
 * answering a write with FAILED_PRECONDITION names the leader, and the call is repeated there. Only when
 * no replica answered at all is the control plane "unreachable" (exit 3, with every address tried).
 */
import { readFileSync } from 'node:fs';
import grpc from '@grpc/grpc-js';
import {
  AdminClient,
  type ApplyRequest,
  type ApplyResponse,
  type DeleteRequest,
  type DiffRequest,
  type DiffResponse,
  type GetRequest,
  type GetResponse,
  type HistoryRequest,
  type HistoryResponse,
  type NodesRequest,
  type NodesResponse,
  type RollbackRequest,
  type StatsRequest,
  type StatsResponse,
  type StatusRequest,
  type StatusResponse,
} from '@doorman/proto/api';
import { CliError, EXIT, type ExitCode } from './exit-codes.js';

export interface AdminApi {
  apply(req: ApplyRequest): Promise<ApplyResponse>;
  diff(req: DiffRequest): Promise<DiffResponse>;
  get(req: GetRequest): Promise<GetResponse>;
  history(req: HistoryRequest): Promise<HistoryResponse>;
  rollback(req: RollbackRequest): Promise<ApplyResponse>;
  delete(req: DeleteRequest): Promise<ApplyResponse>;
  status(req: StatusRequest): Promise<StatusResponse>;
  nodes(req: NodesRequest): Promise<NodesResponse>;
  stats(req: StatsRequest): Promise<StatsResponse>;
  close(): void;
}

/** How to reach the control plane, from the global flags. */
export interface ConnectOptions {
  servers: string[];
  /** null = plaintext (--insecure). */
  tls: { ca: string | null; cert: string | null; key: string | null } | null;
  token: string | null;
  timeoutMs: number;
}

/** Follower -> leader hops allowed per call; more means the replicas disagree about who leads. */
const MAX_LEADER_HOPS = 2;

type Unary<Req, Res> = (
  req: Req,
  md: grpc.Metadata,
  opts: Partial<grpc.CallOptions>,
  cb: (err: grpc.ServiceError | null, res: Res) => void,
) => grpc.ClientUnaryCall;

/** The leader's address from a follower's refusal: the doorman-leader metadata, else host:port in the text. */
export function leaderHint(err: grpc.ServiceError): string | null {
  const fromMeta = err.metadata?.get('doorman-leader')[0];
  if (typeof fromMeta === 'string' && fromMeta !== '') return fromMeta;
  const m = /\b((?:\d{1,3}\.){3}\d{1,3}|localhost|\[[0-9a-fA-F:]+\]|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+):(\d{1,5})\b/.exec(err.details ?? '');
  return m === null ? null : `${m[1]}:${m[2]}`;
}

/** A server-side error carries the control plane's stable code; a transport failure does not. */
function answeredByServer(err: grpc.ServiceError): boolean {
  return err.metadata?.get('doorman-error-code').length > 0;
}

/** The exit code for an error the control plane answered with. */
export function exitFor(code: grpc.status): ExitCode {
  switch (code) {
    case grpc.status.INVALID_ARGUMENT:
      return EXIT.INVALID;
    case grpc.status.ABORTED:
    case grpc.status.NOT_FOUND:
    case grpc.status.ALREADY_EXISTS:
    case grpc.status.FAILED_PRECONDITION:
    case grpc.status.UNAUTHENTICATED:
    case grpc.status.PERMISSION_DENIED:
      return EXIT.REFUSED;
    default:
      return EXIT.SERVER;
  }
}

/** A server's refusal as printed; a refused document gets a header, then its `path: message` lines as sent. */
function refusal(what: string, e: grpc.ServiceError): string {
  if (e.metadata?.get('doorman-error-code')[0] === 'DOORMAN_CP_INVALID_CONFIG') return `${what}: the document is invalid:\n${e.details}`;
  return `${what}: ${e.details || e.message}`;
}

/** The short reason a transport failed: the errno when there is one ("ECONNREFUSED"), else grpc's text. */
function transportReason(e: grpc.ServiceError): string {
  const errno = /\b(E[A-Z]{3,})\b/.exec(e.details ?? '');
  if (errno !== null) return errno[1];
  return (e.details ?? '').replace(/\s*Resolution note:\s*$/, '') || grpc.status[e.code];
}

export class GrpcAdmin implements AdminApi {
  private readonly clients = new Map<string, AdminClient>();

  constructor(private readonly opts: ConnectOptions) {}

  apply = (req: ApplyRequest): Promise<ApplyResponse> => this.call('apply', (c) => c.apply.bind(c), req);
  diff = (req: DiffRequest): Promise<DiffResponse> => this.call('diff', (c) => c.diff.bind(c), req);
  get = (req: GetRequest): Promise<GetResponse> => this.call('get', (c) => c.get.bind(c), req);
  history = (req: HistoryRequest): Promise<HistoryResponse> => this.call('history', (c) => c.history.bind(c), req);
  rollback = (req: RollbackRequest): Promise<ApplyResponse> => this.call('rollback', (c) => c.rollback.bind(c), req);
  delete = (req: DeleteRequest): Promise<ApplyResponse> => this.call('delete', (c) => c.delete.bind(c), req);
  status = (req: StatusRequest): Promise<StatusResponse> => this.call('status', (c) => c.status.bind(c), req);
  nodes = (req: NodesRequest): Promise<NodesResponse> => this.call('nodes', (c) => c.nodes.bind(c), req);
  stats = (req: StatsRequest): Promise<StatsResponse> => this.call('stats', (c) => c.stats.bind(c), req);

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  private credentials(): grpc.ChannelCredentials {
    const tls = this.opts.tls;
    if (tls === null) return grpc.credentials.createInsecure();
    const read = (file: string | null, flag: string): Buffer | null => {
      if (file === null) return null;
      try {
        return readFileSync(file);
      } catch (err) {
        throw new CliError(EXIT.INVALID, `${flag}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    };
    return grpc.credentials.createSsl(read(tls.ca, '--ca'), read(tls.key, '--key'), read(tls.cert, '--cert'));
  }

  private client(address: string): AdminClient {
    let c = this.clients.get(address);
    if (c === undefined) {
      c = new AdminClient(address, this.credentials());
      this.clients.set(address, c);
    }
    return c;
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.opts.token !== null) md.set('authorization', `Bearer ${this.opts.token}`);
    return md;
  }

  private once<Req, Res>(address: string, pick: (c: AdminClient) => Unary<Req, Res>, req: Req): Promise<Res> {
    const fn = pick(this.client(address));
    return new Promise((resolve, reject) => {
      fn(req, this.metadata(), { deadline: Date.now() + this.opts.timeoutMs }, (err, res) => (err === null ? resolve(res) : reject(err)));
    });
  }

  private async call<Req, Res>(what: string, pick: (c: AdminClient) => Unary<Req, Res>, req: Req): Promise<Res> {
    const queue = [...this.opts.servers];
    const tried: string[] = [];
    let lastAnswer: grpc.ServiceError | null = null;
    let hops = 0;
    while (queue.length > 0) {
      const address = queue.shift()!;
      try {
        return await this.once(address, pick, req);
      } catch (err) {
        if (err instanceof CliError) throw err;
        const e = err as grpc.ServiceError;
        if (e.code === grpc.status.FAILED_PRECONDITION) {
          const leader = leaderHint(e);
          if (leader !== null && leader !== address && hops < MAX_LEADER_HOPS) {
            hops++;
            queue.unshift(leader);
            continue;
          }
        }
        const unavailable = e.code === grpc.status.UNAVAILABLE || e.code === grpc.status.DEADLINE_EXCEEDED;
        if (!unavailable) throw new CliError(exitFor(e.code), refusal(what, e));
        // An answering replica that cannot serve (etcd down, no leader): another one may; remember why.
        if (answeredByServer(e)) lastAnswer = e;
        tried.push(`${address} (${transportReason(e)})`);
      }
    }
    if (lastAnswer !== null) throw new CliError(EXIT.SERVER, `${what}: ${lastAnswer.details}`);
    throw new CliError(EXIT.UNREACHABLE, `cannot reach the control plane; tried ${tried.join(', ')}`);
  }
}
