/**
 * The data plane's agent-mode flags, parsed and checked in one place so the CLI and the tests agree on
 * what a valid invocation is.
 */
import os from 'node:os';
import { ConfigError, parseDuration } from '@doorman/proto';
import { AgentError, A } from './errors.js';

export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface AgentOptions {
  /** Control-plane replicas, host:port each, tried in order and failed over between. */
  addresses: string[];
  nodeId: string;
  labels: Record<string, string>;
  /** Where the last accepted config and secrets are kept; null = no last-known-good. */
  stateDir: string | null;
  /** null = plaintext (--insecure). */
  tls: TlsFiles | null;
  /** Overrides general.host/port of every pushed config (several data planes on one host). */
  listen: { host: string; port: number } | null;
  /** How long to wait for the control plane before booting from the last-known-good config. */
  initialWaitMs: number;
  statusIntervalMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
}

/** Raw values as commander hands them over. */
export interface AgentFlags {
  controlPlane: string;
  nodeId?: string;
  labels?: string;
  stateDir?: string;
  ca?: string;
  cert?: string;
  key?: string;
  insecure?: boolean;
  listen?: string;
  initialWait?: string;
  statusInterval?: string;
}

const HOST_PORT = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** "a:1,b:2" -> ["a:1", "b:2"]; every entry must be host:port. */
export function parseAddresses(text: string, flag: string): string[] {
  const out = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (out.length === 0) throw new AgentError(A.badFlag, `${flag}: give at least one host:port`);
  for (const a of out) {
    const m = HOST_PORT.exec(a);
    if (m === null || Number(m[1]) < 1 || Number(m[1]) > 65535) throw new AgentError(A.badFlag, `${flag}: "${a}" is not host:port`);
  }
  return out;
}

/** "k=v,k2=v2" -> { k: "v", k2: "v2" }. */
export function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new AgentError(A.badFlag, `--labels: "${part}" is not key=value`);
    const key = part.slice(0, eq).trim();
    if (Object.hasOwn(out, key)) throw new AgentError(A.badFlag, `--labels: "${key}" given twice`);
    out[key] = part.slice(eq + 1).trim();
  }
  return out;
}

function duration(text: string, flag: string): number {
  try {
    return parseDuration(text, flag);
  } catch (err) {
    if (err instanceof ConfigError) throw new AgentError(A.badFlag, err.message);
    throw err;
  }
}

export function agentOptions(flags: AgentFlags): AgentOptions {
  const addresses = parseAddresses(flags.controlPlane, '--control-plane');
  const nodeId = flags.nodeId?.trim() ?? '';
  if (nodeId === '') throw new AgentError(A.badFlag, '--node-id is required with --control-plane');
  const labels = parseLabels(flags.labels ?? '');
  // The control plane groups nodes by host; fill it in unless the operator named it.
  if (!Object.hasOwn(labels, 'host')) labels.host = os.hostname();
  const tlsGiven = [flags.ca, flags.cert, flags.key].filter((f) => f !== undefined).length;
  let tls: TlsFiles | null = null;
  if (flags.insecure === true) {
    if (tlsGiven > 0) throw new AgentError(A.badFlag, '--insecure cannot be combined with --ca/--cert/--key');
  } else {
    if (tlsGiven !== 3) throw new AgentError(A.badFlag, 'give --ca, --cert and --key for TLS to the control plane, or --insecure for plaintext');
    tls = { ca: flags.ca!, cert: flags.cert!, key: flags.key! };
  }
  let listen: AgentOptions['listen'] = null;
  if (flags.listen !== undefined) {
    const [address] = parseAddresses(flags.listen, '--listen');
    const colon = address.lastIndexOf(':');
    listen = { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(address.slice(colon + 1)) };
  }
  return {
    addresses,
    listen,
    nodeId,
    labels,
    stateDir: flags.stateDir ?? null,
    tls,
    initialWaitMs: duration(flags.initialWait ?? '10s', '--initial-wait'),
    statusIntervalMs: Math.max(100, duration(flags.statusInterval ?? '5s', '--status-interval')),
    backoffInitialMs: 250,
    backoffMaxMs: 10_000,
  };
}
