/**
 * The HTTP listener of the main thread: GET /metrics (Prometheus text), /healthz (the process runs) and
 * /readyz (see ready.ts). A scrape gathers one snapshot from every shard; a shard that does not answer in
 * time is left out (Doorman.snapshots() bounds the wait), so a scrape never holds up client traffic.
 */
import http from 'node:http';
import type net from 'node:net';
import type { Logger } from 'pino';
import type { ShardSnapshot } from '../admin/view.js';
import { createMetrics, type DoormanMetrics, type MetricsSample } from './families.js';
import { readiness } from './ready.js';

/** What the endpoints read from the process. */
export interface MetricsSource {
  readonly shards: number;
  listening(): boolean;
  clientTotal(): number;
  /** Every shard's per-pool figures and counters, merged. */
  poolFigures(): Promise<Pick<ShardSnapshot, 'pools' | 'stats' | 'mem'>>;
}

const EMPTY: MetricsSample = { snap: { pools: [], stats: [], mem: [] }, shards: 0, clients: 0 };

export class MetricsServer {
  private readonly metrics: DoormanMetrics;
  private current: MetricsSample = EMPTY;
  private readonly server: http.Server;

  constructor(
    private readonly source: MetricsSource,
    private readonly log: Logger,
  ) {
    this.metrics = createMetrics(() => this.current);
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.log.error({ err: (err as Error).message, path: req.url }, 'metrics endpoint failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('internal error\n');
      });
    });
  }

  get families(): readonly string[] {
    return this.metrics.families;
  }

  listen(host: string, port: number): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port }, () => {
        this.server.removeListener('error', reject);
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    switch (path) {
      case '/metrics': {
        const snap = await this.source.poolFigures();
        // The families read `current` synchronously inside metrics(), so concurrent scrapes cannot mix samples.
        this.current = { snap, shards: this.source.shards, clients: this.source.clientTotal() };
        const rendering = this.metrics.registry.metrics();
        this.current = EMPTY;
        const body = await rendering;
        res.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(body);
        return;
      }
      case '/healthz':
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}\n');
        return;
      case '/readyz': {
        const r = readiness(this.source.listening(), await this.source.poolFigures());
        res.writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify(r)}\n`);
        return;
      }
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz or /readyz\n');
    }
  }
}
