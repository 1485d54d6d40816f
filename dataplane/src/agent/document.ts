/**
 * Turns what the control plane pushes (the config document without secrets, and the secrets resource)
 * into the same YAML-schema document a standalone data plane reads from its file, then validates it with
 * the same code, so agent mode and file mode can never disagree on what a config means.
 */
import { ConfigError, parseConfig, type WarningHandler } from '@doorman/proto';
import type { SecretsPush, UserSecret } from '@doorman/proto/api';
import { validateLoaded, type LoadedConfig } from '../config/load.js';

/** The secrets resource as the agent keeps it (also its on-disk form). */
export interface Secrets {
  version: number;
  users: UserSecret[];
  adminPassword: string;
}

export const NO_SECRETS: Secrets = { version: 0, users: [], adminPassword: '' };

export function secretsOf(push: SecretsPush): Secrets {
  return {
    version: push.version,
    users: push.users.map((u) => ({ database: u.database, username: u.username, password: u.password, serverPassword: u.serverPassword })),
    adminPassword: push.adminPassword,
  };
}

type JsonMap = Record<string, unknown>;

function isMap(v: unknown): v is JsonMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Settings that belong to one node rather than the fleet's document. */
export interface NodeOverrides {
  /** Replaces general.host/general.port: several data planes on one host need their own ports. */
  listen: { host: string; port: number } | null;
}

export const NO_OVERRIDES: NodeOverrides = { listen: null };

/**
 * The pushed document with the secrets and this node's overrides filled in, as JSON text (valid YAML).
 * Shape problems are left to the schema validator so they come back with its field paths; only non-JSON
 * is refused here.
 */
export function mergeSecrets(documentJson: string, secrets: Secrets, node: NodeOverrides = NO_OVERRIDES): string {
  let doc: unknown;
  try {
    doc = JSON.parse(documentJson);
  } catch (err) {
    throw new ConfigError([{ path: '(document)', message: `the pushed document is not JSON: ${(err as Error).message}` }]);
  }
  if (!isMap(doc)) return documentJson;
  const byUser = new Map<string, UserSecret>();
  for (const s of secrets.users) byUser.set(`${s.database}\0${s.username}`, s);
  const pools = doc.pools;
  if (isMap(pools)) {
    for (const [database, pool] of Object.entries(pools)) {
      if (!isMap(pool)) continue;
      // PgDoorman files may write users as a map keyed by index instead of a list.
      const users: unknown[] = Array.isArray(pool.users) ? pool.users : isMap(pool.users) ? Object.values(pool.users) : [];
      for (const user of users) {
        if (!isMap(user) || typeof user.username !== 'string') continue;
        const s = byUser.get(`${database}\0${user.username}`);
        if (s === undefined) continue;
        if (s.password !== '') user.password = s.password;
        if (s.serverPassword !== '') user.server_password = s.serverPassword;
      }
    }
  }
  if (secrets.adminPassword !== '' || node.listen !== null) {
    if (!isMap(doc.general)) doc.general = {};
    const general = doc.general as JsonMap;
    if (secrets.adminPassword !== '') general.admin_password = secrets.adminPassword;
    if (node.listen !== null) {
      general.host = node.listen.host;
      general.port = node.listen.port;
    }
  }
  return JSON.stringify(doc);
}

/** Parses and validates a pushed version; throws ConfigError (field paths) when it cannot be served. */
export function buildConfig(
  documentJson: string,
  secrets: Secrets,
  version: number,
  node: NodeOverrides = NO_OVERRIDES,
  onWarning?: WarningHandler,
): LoadedConfig {
  const text = mergeSecrets(documentJson, secrets, node);
  const config = parseConfig(text, `control plane v${version}`, { onWarning });
  return validateLoaded(config);
}
