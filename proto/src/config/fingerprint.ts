import { createHash } from 'node:crypto';
import type { PoolConfig, UserConfig } from './types.js';

/** JSON with object keys sorted at every level, so equal configs hash equally whatever their key order. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const entries = Object.entries(v)
      .filter(([, value]) => value !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, value]) => `${JSON.stringify(k)}:${canonicalJson(value)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Identifies a pool's whole effective config, so a reload can leave unchanged pools alone.
 * Users are hashed in username order: reordering the YAML list is not a change.
 */
export function poolFingerprint(pool: PoolConfig): string {
  const users = [...pool.users].sort((a, b) => (a.username < b.username ? -1 : a.username > b.username ? 1 : 0));
  return sha256Hex(canonicalJson({ kind: 'pool', ...pool, users }));
}

/**
 * Identifies what a (pool, user) pair's server connections are: where they go, how they log in and
 * what they are used for. Equal fingerprints mean existing server connections can be kept; sizes and
 * lifetimes are left out because a reload applies them to the running pool in place.
 * General-level settings (connect timeout, CA file, ...) are not included; compare those separately.
 */
export function userFingerprint(pool: PoolConfig, user: UserConfig): string {
  return sha256Hex(
    canonicalJson({
      kind: 'user',
      pool: pool.name,
      serverHost: pool.serverHost,
      serverPort: pool.serverPort,
      serverDatabase: pool.serverDatabase,
      serverTlsMode: pool.serverTlsMode,
      applicationName: pool.applicationName,
      username: user.username,
      serverUsername: user.serverUsername,
      // The client secret doubles as the server secret when no server_password is set.
      serverSecret: user.serverPassword ?? user.password,
      poolMode: user.poolMode,
    }),
  );
}
