/** A throwaway single-member etcd (Debian's /usr/bin/etcd) on loopback, with its own data dir. */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { freePort, waitForPort } from './ports.js';
import { makeTempDir, run, startProcess, type ExitInfo, type ManagedProcess, type TempDir } from './processes.js';

export const ETCD_BIN = process.env.ETCD_BIN ?? '/usr/bin/etcd';
export const ETCDCTL_BIN = process.env.ETCDCTL_BIN ?? '/usr/bin/etcdctl';

export interface StartEtcdOptions {
  /** Member name; default "doorman-test". */
  name?: string;
  /** Bound on start-up (until the client port answers a health check). Default 20 s. */
  readyTimeoutMs?: number;
  /** Keep the event loop alive while etcd runs (the local fleet script); tests leave it off. */
  keepAlive?: boolean;
  onLine?: (line: string) => void;
}

const BIND_ATTEMPTS = 3;

export class EtcdProcess {
  readonly dataDir: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly name: string;
  private proc: ManagedProcess;
  private readonly tempDir: TempDir;
  private readonly options: StartEtcdOptions;

  constructor(proc: ManagedProcess, tempDir: TempDir, clientPort: number, peerPort: number, options: StartEtcdOptions) {
    this.proc = proc;
    this.tempDir = tempDir;
    this.dataDir = path.join(tempDir.path, 'data');
    this.clientPort = clientPort;
    this.peerPort = peerPort;
    this.name = options.name ?? 'doorman-test';
    this.options = options;
  }

  /** host:port for --etcd flags and the etcd3 client. */
  get endpoint(): string {
    return `127.0.0.1:${this.clientPort}`;
  }

  get url(): string {
    return `http://${this.endpoint}`;
  }

  get running(): boolean {
    return this.proc.running;
  }

  get process(): ManagedProcess {
    return this.proc;
  }

  get exited(): Promise<ExitInfo> {
    return this.proc.exited;
  }

  output(maxLines = 60): string {
    return this.proc.output(maxLines);
  }

  /** etcdctl against this member (ETCDCTL_API=3), bounded in time; never rejects for a non-zero exit. */
  etcdctl(args: readonly string[], timeoutMs = 15_000): ReturnType<typeof run> {
    return run(ETCDCTL_BIN, ['--endpoints', this.url, '--dial-timeout=2s', '--command-timeout=5s', ...args], {
      env: { ETCDCTL_API: '3' },
      timeoutMs,
    });
  }

  /** Stops the member but keeps its data dir and ports, so restart() brings the same cluster back. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<ExitInfo> {
    return this.proc.stop({ signal, timeoutMs: 10_000 });
  }

  /** SIGSTOP/SIGCONT: the member hangs (connections stay open, nothing answers) instead of refusing. */
  pause(): boolean {
    return this.proc.signal('SIGSTOP');
  }

  resume(): boolean {
    return this.proc.signal('SIGCONT');
  }

  /** Starts the member again on the same ports and data dir (after stop()). */
  async restart(readyTimeoutMs = 20_000): Promise<void> {
    if (this.proc.running) throw new Error('etcd is still running; stop() it first');
    this.proc = spawnEtcd(this.tempDir.path, this.name, this.clientPort, this.peerPort, this.options);
    await waitReady(this, readyTimeoutMs);
  }

  /** Stops the member and removes its data dir. */
  async remove(): Promise<void> {
    try {
      if (this.proc.running) await this.proc.stop({ signal: 'SIGKILL', timeoutMs: 5_000 });
    } finally {
      await this.tempDir.remove();
    }
  }
}

function spawnEtcd(dir: string, name: string, clientPort: number, peerPort: number, options: StartEtcdOptions): ManagedProcess {
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  return startProcess(
    ETCD_BIN,
    [
      '--name', name,
      '--data-dir', path.join(dir, 'data'),
      '--listen-client-urls', client,
      '--advertise-client-urls', client,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `${name}=${peer}`,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', `doorman-${clientPort}`,
      '--log-level', 'warn',
      '--logger', 'zap',
    ],
    {
      name: `etcd:${clientPort}`,
      cwd: dir,
      env: {},
      ...(options.onLine ? { onLine: (line: string) => options.onLine?.(line) } : {}),
      ...(options.keepAlive ? { keepAlive: true } : {}),
    },
  );
}

async function waitReady(etcd: EtcdProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  await waitForPort(etcd.clientPort, '127.0.0.1', timeoutMs, { abort: etcd.exited });
  // The port opens before the member has elected itself; wait until a write would succeed.
  for (;;) {
    const health = await etcd.etcdctl(['endpoint', 'health'], 5_000);
    if (health.code === 0) return;
    if (!etcd.running) throw new Error(`etcd exited during start-up:\n${etcd.output()}`);
    if (Date.now() > deadline) throw new Error(`etcd not healthy within ${timeoutMs} ms: ${health.stderr.trim()}\n${etcd.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Starts a single-member etcd on two free loopback ports with a fresh data dir; resolves once healthy. */
export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdProcess> {
  const tempDir = await makeTempDir('doorman-etcd', { forServiceUser: false });
  const readyTimeoutMs = options.readyTimeoutMs ?? 20_000;
  try {
    for (let attempt = 1; ; attempt++) {
      const clientPort = await freePort();
      const peerPort = await freePort();
      const proc = spawnEtcd(tempDir.path, options.name ?? 'doorman-test', clientPort, peerPort, options);
      const etcd = new EtcdProcess(proc, tempDir, clientPort, peerPort, options);
      try {
        await waitReady(etcd, readyTimeoutMs);
        return etcd;
      } catch (err) {
        if (proc.running) await proc.stop({ signal: 'SIGKILL', timeoutMs: 5_000 });
        const bindFailed = /address already in use/i.test(proc.output(200));
        if (bindFailed && attempt < BIND_ATTEMPTS) {
          // The half-initialised member remembers the old ports.
          await rm(path.join(tempDir.path, 'data'), { recursive: true, force: true });
          continue;
        }
        throw new Error(`etcd did not start: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  } catch (err) {
    await tempDir.remove();
    throw err;
  }
}
