/**
 * doormanctl's global flags (and their environment fallbacks) turned into ConnectOptions, with every
 * mistake reported before anything is sent.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, parseDuration } from '@doorman/proto';
import type { ConnectOptions } from './admin-api.js';
import { CliError, EXIT } from './exit-codes.js';

export interface GlobalFlags {
  server?: string;
  ca?: string;
  cert?: string;
  key?: string;
  tokenFile?: string;
  insecure?: boolean;
  timeout?: string;
}

export type Env = Readonly<Record<string, string | undefined>>;

const HOST_PORT = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

function invalid(message: string): CliError {
  return new CliError(EXIT.INVALID, message);
}

/** "a:1, b:2" -> ["a:1", "b:2"], each host:port, duplicates dropped. */
export function parseServers(text: string): string[] {
  const out: string[] = [];
  for (const s of text.split(',').map((x) => x.trim()).filter((x) => x !== '')) {
    const m = HOST_PORT.exec(s);
    if (m === null || Number(m[1]) < 1 || Number(m[1]) > 65535) throw invalid(`--server: "${s}" is not host:port`);
    if (!out.includes(s)) out.push(s);
  }
  if (out.length === 0) throw invalid('--server: give at least one host:port');
  return out;
}

function readToken(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw invalid(`--token-file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const token = text.trim();
  if (token === '') throw invalid(`--token-file: ${file} is empty`);
  return token;
}

export function connectOptions(flags: GlobalFlags, env: Env): ConnectOptions {
  const serverText = flags.server ?? env.DOORMAN_CONTROL_PLANE;
  if (serverText === undefined || serverText.trim() === '') {
    throw invalid('no control plane given: use --server host:port[,host:port] or set DOORMAN_CONTROL_PLANE');
  }
  const servers = parseServers(serverText);

  const ca = flags.ca ?? env.DOORMAN_CA ?? null;
  const cert = flags.cert ?? env.DOORMAN_CERT ?? null;
  const key = flags.key ?? env.DOORMAN_KEY ?? null;
  if ((cert === null) !== (key === null)) throw invalid('--cert and --key go together');
  if (flags.insecure === true && (flags.ca !== undefined || flags.cert !== undefined || flags.key !== undefined)) {
    throw invalid('--insecure cannot be combined with --ca/--cert/--key');
  }
  const tls = flags.insecure === true ? null : { ca, cert, key };

  let token: string | null = null;
  if (flags.tokenFile !== undefined) token = readToken(flags.tokenFile);
  else if (env.DOORMAN_TOKEN !== undefined && env.DOORMAN_TOKEN.trim() !== '') token = env.DOORMAN_TOKEN.trim();

  let timeoutMs = 10_000;
  if (flags.timeout !== undefined) {
    try {
      timeoutMs = parseDuration(flags.timeout, '--timeout');
    } catch (err) {
      if (err instanceof ConfigError) throw invalid(err.message);
      throw err;
    }
    if (timeoutMs === 0) throw invalid('--timeout must be more than 0');
  }
  return { servers, tls, token, timeoutMs };
}
