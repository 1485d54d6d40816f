import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmod, chown, mkdtemp, readdir, rm } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';

// ---------------------------------------------------------------------------
// Cleanup at exit: every server the harness starts is killed when the test
// process ends, even when a test forgot its `after` hook or threw in setup.

type Cleanup = () => void;
const cleanups = new Set<Cleanup>();
let hooksInstalled = false;

const SIGNAL_NUMBERS: Record<'SIGINT' | 'SIGTERM' | 'SIGHUP', number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

function runCleanups(): void {
  const pending = [...cleanups].reverse();
  cleanups.clear();
  for (const fn of pending) {
    try {
      fn();
    } catch {
      // Best effort: the process is going away.
    }
  }
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', runCleanups);
  for (const sig of Object.keys(SIGNAL_NUMBERS) as (keyof typeof SIGNAL_NUMBERS)[]) {
    process.on(sig, () => {
      // Someone else (the test runner, the demo) handles this signal and will
      // exit through process.exit(), which runs the 'exit' hook.
      if (process.listenerCount(sig) > 1) return;
      runCleanups();
      process.exit(128 + SIGNAL_NUMBERS[sig]);
    });
  }
}

/** Registers a synchronous callback run when this process exits; returns its remover. */
export function onExit(fn: Cleanup): () => void {
  installExitHooks();
  cleanups.add(fn);
  return () => {
    cleanups.delete(fn);
  };
}

// ---------------------------------------------------------------------------
// Identity: PostgreSQL and PgBouncer refuse to run as root.

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

let serviceUserCache: OsUser | null | undefined;

/** The `postgres` OS account when this process is root, otherwise undefined (servers run as us). */
export function serviceUser(): OsUser | undefined {
  if (serviceUserCache !== undefined) return serviceUserCache ?? undefined;
  if (!isRoot()) {
    serviceUserCache = null;
    return undefined;
  }
  const idOf = (flag: string): number => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  let home = '/var/lib/postgresql';
  try {
    home = execFileSync('getent', ['passwd', 'postgres'], { encoding: 'utf8' }).split(':')[5] ?? home;
  } catch {
    // Keep the Debian default.
  }
  try {
    serviceUserCache = { name: 'postgres', uid: idOf('-u'), gid: idOf('-g'), home };
  } catch (err) {
    throw new Error(`running as root but there is no "postgres" OS user (install postgresql-15): ${String(err)}`);
  }
  return serviceUserCache;
}

/** Gives a path (recursively for directories) to the service user when we are root. */
export async function chownToServiceUser(target: string): Promise<void> {
  const user = serviceUser();
  if (!user) return;
  await chown(target, user.uid, user.gid);
  const entries = await readdir(target, { withFileTypes: true }).catch(() => null);
  if (!entries) return;
  for (const entry of entries) {
    const child = path.join(target, entry.name);
    if (entry.isDirectory()) await chownToServiceUser(child);
    else await chown(child, user.uid, user.gid);
  }
}

export interface TempDir {
  path: string;
  remove(): Promise<void>;
}

/**
 * mkdtemp under the OS temp dir (mode 700), by default owned by the service
 * user when we are root; removed at exit unless remove() ran first.
 */
export async function makeTempDir(prefix: string, options: { forServiceUser?: boolean } = {}): Promise<TempDir> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `${prefix}-`));
  await chmod(dir, 0o700);
  if (options.forServiceUser ?? true) await chownToServiceUser(dir);
  const unregister = onExit(() => rmSync(dir, { recursive: true, force: true }));
  return {
    path: dir,
    async remove() {
      unregister();
      await rm(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 });
    },
  };
}

// ---------------------------------------------------------------------------
// Environment: a caller's PGPASSWORD/PGHOST must never reach a server or a
// client we start (it silently changes who authenticates to what).

const DROPPED_ENV = [/^PG/, /^npm_/i, /^INIT_CWD$/, /^NODE_TEST_CONTEXT$/, /^PYTHONPATH$/, /^PYTHONHOME$/];

export type EnvAdditions = Record<string, string | undefined>;

export function cleanEnv(extra: EnvAdditions = {}, user?: OsUser): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || DROPPED_ENV.some((re) => re.test(key))) continue;
    env[key] = value;
  }
  if (user) {
    env.HOME = user.home;
    env.USER = user.name;
    env.LOGNAME = user.name;
  }
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

interface SpawnIdentity {
  uid?: number;
  gid?: number;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

function identity(asServiceUser: boolean | undefined, env: EnvAdditions | undefined, cwd: string | undefined): SpawnIdentity {
  const user = asServiceUser ? serviceUser() : undefined;
  const result: SpawnIdentity = {
    env: cleanEnv(env, user),
    // The service user may not be able to enter the caller's directory.
    cwd: cwd ?? (user ? os.tmpdir() : process.cwd()),
  };
  if (user) {
    result.uid = user.uid;
    result.gid = user.gid;
  }
  return result;
}

// ---------------------------------------------------------------------------
// Long-running children.

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all (e.g. ENOENT). */
  error?: Error;
}

export type OutputStream = 'stdout' | 'stderr';

export interface StartOptions {
  /** Used in error messages. */
  name: string;
  cwd?: string;
  /** Added to (or, with undefined, removed from) the cleaned environment. */
  env?: EnvAdditions;
  /** Run as the `postgres` OS user when we are root. */
  asServiceUser?: boolean;
  /** How many output lines to keep (oldest dropped first). Default 2000. */
  ringSize?: number;
  onLine?: (line: string, stream: OutputStream) => void;
  /** Sent if the child is still running when this process exits. Default SIGKILL. */
  exitSignal?: NodeJS.Signals;
  /**
   * Keep this process's event loop alive while the child runs. Off by default
   * so a test that forgets to stop a server ends (and kills it) instead of hanging.
   */
  keepAlive?: boolean;
}

export interface StopOptions {
  signal?: NodeJS.Signals;
  /** After this long the child gets SIGKILL. Default 10 s. */
  timeoutMs?: number;
}

export class ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<ExitInfo>;
  private readonly ring: string[] = [];
  private readonly ringSize: number;
  private readonly lineListeners = new Set<(line: string, stream: OutputStream) => void>();
  private exitInfoValue: ExitInfo | undefined;

  constructor(command: string, args: readonly string[], options: StartOptions) {
    this.name = options.name;
    this.ringSize = options.ringSize ?? 2000;
    if (options.onLine) this.lineListeners.add(options.onLine);
    const id = identity(options.asServiceUser, options.env, options.cwd);
    this.child = spawn(command, args, {
      cwd: id.cwd,
      env: id.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(id.uid !== undefined ? { uid: id.uid, gid: id.gid } : {}),
    });
    this.capture(this.child.stdout, 'stdout', options.keepAlive === true);
    this.capture(this.child.stderr, 'stderr', options.keepAlive === true);
    if (!options.keepAlive) this.child.unref();

    const exitSignal = options.exitSignal ?? 'SIGKILL';
    const unregister = onExit(() => {
      if (this.running) this.child.kill(exitSignal);
    });
    this.exited = new Promise<ExitInfo>((resolve) => {
      let settled = false;
      const settle = (info: ExitInfo): void => {
        if (settled) return;
        settled = true;
        unregister();
        this.exitInfoValue = info;
        resolve(info);
      };
      this.child.once('error', (error) => {
        if (this.child.pid === undefined) settle({ code: null, signal: null, error });
      });
      this.child.once('exit', (code, signal) => {
        // Let the pipes drain so the last lines (usually the reason) are captured,
        // but do not wait on a grandchild that inherited them.
        const drained = once(this.child, 'close');
        void Promise.race([drained, sleep(500, undefined, { ref: false })]).then(() => settle({ code, signal }));
      });
    });
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.name} has no pid (failed to start)`);
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitInfoValue === undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get exitInfo(): ExitInfo | undefined {
    return this.exitInfoValue;
  }

  /** Captured output lines, oldest first (both streams interleaved as received). */
  lines(): string[] {
    return [...this.ring];
  }

  /** The captured lines that parse as JSON objects (pino logs one record per line). */
  jsonLines(): Record<string, unknown>[] {
    const entries: Record<string, unknown>[] = [];
    for (const line of this.ring) {
      if (!line.startsWith('{')) continue;
      try {
        const value: unknown = JSON.parse(line);
        if (value !== null && typeof value === 'object' && !Array.isArray(value)) entries.push(value as Record<string, unknown>);
      } catch {
        // Not a log record.
      }
    }
    return entries;
  }

  /** The last `maxLines` lines, for error messages. */
  output(maxLines = 60): string {
    return this.ring.slice(-maxLines).join('\n');
  }

  /** Calls `listener` for every future line; returns a remover that reports whether it was still registered. */
  onLine(listener: (line: string, stream: OutputStream) => void): () => boolean {
    this.lineListeners.add(listener);
    return () => this.lineListeners.delete(listener);
  }

  /** Resolves with the first line (already captured or future) that matches; rejects on timeout or exit. */
  waitForLine(match: RegExp | ((line: string) => boolean), timeoutMs = 10_000): Promise<string> {
    const test = typeof match === 'function' ? match : (line: string) => match.test(line);
    const seen = this.ring.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<string>((resolve, reject) => {
      let removeListener = (): boolean => false;
      // True only for the first caller, so exactly one outcome wins.
      const settle = (): boolean => {
        clearTimeout(timer);
        return removeListener();
      };
      const timer = setTimeout(() => {
        if (settle()) reject(new Error(`${this.name}: no matching output line within ${timeoutMs} ms; last output:\n${this.output()}`));
      }, timeoutMs);
      removeListener = this.onLine((line) => {
        if (test(line) && settle()) resolve(line);
      });
      void this.exited.then((info) => {
        if (settle()) {
          reject(new Error(`${this.name} exited (${formatExit(info)}) before printing a matching line; last output:\n${this.output()}`));
        }
      });
    });
  }

  signal(sig: NodeJS.Signals): boolean {
    return this.running && this.child.kill(sig);
  }

  /** Sends `signal` (default SIGTERM), then SIGKILL after `timeoutMs`; resolves when the child is gone. */
  async stop(options: StopOptions = {}): Promise<ExitInfo> {
    if (!this.running) return this.exited;
    this.child.kill(options.signal ?? 'SIGTERM');
    const timeoutMs = options.timeoutMs ?? 10_000;
    const timer = setTimeout(() => {
      if (this.running) this.child.kill('SIGKILL');
    }, timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  private capture(stream: NodeJS.ReadableStream & { unref?: () => void } | null, name: OutputStream, keepAlive: boolean): void {
    if (!stream) return;
    if (!keepAlive) stream.unref?.();
    stream.setEncoding('utf8');
    let partial = '';
    stream.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) this.push(line, name);
    });
    stream.on('end', () => {
      if (partial) this.push(partial, name);
      partial = '';
    });
  }

  private push(line: string, stream: OutputStream): void {
    this.ring.push(line);
    if (this.ring.length > this.ringSize) this.ring.shift();
    for (const listener of [...this.lineListeners]) listener(line, stream);
  }
}

export function startProcess(command: string, args: readonly string[], options: StartOptions): ManagedProcess {
  return new ManagedProcess(command, args, options);
}

export function formatExit(info: ExitInfo): string {
  if (info.error) return `failed to start: ${info.error.message}`;
  if (info.signal) return `killed by ${info.signal}`;
  return `exit code ${String(info.code)}`;
}

// ---------------------------------------------------------------------------
// Short-lived commands.

export interface RunResult {
  /** null when killed by a signal (including the timeout) or not started. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface RunOptions {
  cwd?: string;
  env?: EnvAdditions;
  asServiceUser?: boolean;
  /** Written to stdin, which is then closed. */
  input?: string;
  /** Default 60 s; the child gets SIGKILL when it runs out. */
  timeoutMs?: number;
}

/** Runs a command to completion with a time bound. Never rejects for a non-zero exit. */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const id = identity(options.asServiceUser, options.env, options.cwd);
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise<RunResult>((resolve) => {
    const child = spawn(command, args, {
      cwd: id.cwd,
      env: id.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(id.uid !== undefined ? { uid: id.uid, gid: id.gid } : {}),
    });
    const unregister = onExit(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdin.on('error', () => {
      // The child may exit without reading its input (EPIPE); its exit status tells the story.
    });
    child.stdin.end(options.input ?? '');
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      unregister();
      resolve({ code: null, signal: null, stdout, stderr: stderr + `${command}: ${error.message}`, timedOut });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      unregister();
      if (timedOut) stderr += `\n${command}: killed after ${timeoutMs} ms time limit`;
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** Like run(), but rejects with the command's stderr unless it exits 0. */
export async function runChecked(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    const what = result.timedOut ? 'timed out' : result.signal ? `killed by ${result.signal}` : `exit code ${String(result.code)}`;
    throw new Error(`${path.basename(command)} ${args.join(' ')} failed (${what}):\n${result.stderr.trim() || result.stdout.trim()}`);
  }
  return result;
}
