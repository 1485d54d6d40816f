import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

// Linux hands out 32768-60999 as ephemeral client ports; other tenants' sockets
// in TIME_WAIT there made servers fail to bind. Stay below that range.
const PORT_MIN = 20000;
const PORT_MAX = 32000;
const MAX_ATTEMPTS = 200;

// Ports returned earlier in this process: two servers started concurrently
// must not both be offered a port that neither has bound yet.
const handedOut = new Set<number>();

export function canBind(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => {
      server.close(() => resolve(true));
    });
  });
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const port = PORT_MIN + Math.floor(Math.random() * (PORT_MAX - PORT_MIN));
    if (handedOut.has(port)) continue;
    if (await canBind(port, host)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no bindable port found in ${PORT_MIN}..${PORT_MAX} on ${host} after ${MAX_ATTEMPTS} attempts`);
}

function tryConnect(port: number, host: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export interface WaitForPortOptions {
  /** Rejects early when this promise settles first (e.g. the server process exited). */
  abort?: Promise<unknown>;
  intervalMs?: number;
}

/** Resolves once a TCP connection to host:port succeeds; rejects after timeoutMs. */
export async function waitForPort(
  port: number,
  host = '127.0.0.1',
  timeoutMs = 15_000,
  options: WaitForPortOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const intervalMs = options.intervalMs ?? 50;
  let aborted: unknown = undefined;
  let isAborted = false;
  options.abort?.then(
    (value) => { isAborted = true; aborted = value; },
    (err: unknown) => { isAborted = true; aborted = err; },
  );
  for (;;) {
    if (isAborted) {
      throw new Error(`gave up waiting for ${host}:${port}: ${describe(aborted)}`);
    }
    if (await tryConnect(port, host, Math.max(100, Math.min(1000, deadline - Date.now())))) return;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${host}:${port} to accept connections`);
    }
    await sleep(intervalMs);
  }
}

function describe(value: unknown): string {
  if (value instanceof Error) return value.message;
  if (typeof value === 'string') return value;
  return JSON.stringify(value) ?? String(value);
}
