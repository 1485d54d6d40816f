/** The key layout under the installation prefix (default /doorman/). */

const PAD = 20;

export const KEYS = {
  generation: 'config/generation',
  generationsPrefix: 'generations/',
  secretsGeneration: 'secrets/generation',
  secretsPrefix: 'secrets/data/',
  leader: 'leader',
  replicasPrefix: 'replicas/',
  nodesPrefix: 'nodes/',
  livePrefix: 'live/',
} as const;

/** Zero-padded so lexical key order is numeric order (range deletes prune the oldest). */
export function pad(n: number): string {
  return String(n).padStart(PAD, '0');
}

export const generationKey = (n: number): string => `${KEYS.generationsPrefix}${pad(n)}`;
export const secretsKey = (n: number): string => `${KEYS.secretsPrefix}${pad(n)}`;
export const replicaKey = (id: string): string => `${KEYS.replicasPrefix}${id}`;
export const nodeKey = (id: string): string => `${KEYS.nodesPrefix}${id}`;
export const liveKey = (id: string): string => `${KEYS.livePrefix}${id}`;

/** The installation prefix with exactly one trailing slash. */
export function normalizePrefix(prefix: string): string {
  const p = prefix.trim();
  if (p === '') return '/doorman/';
  return p.endsWith('/') ? p : `${p}/`;
}

/** The number at the end of a padded key. */
export function keyNumber(key: string, prefix: string): number | null {
  if (!key.startsWith(prefix)) return null;
  const rest = key.slice(prefix.length);
  return /^\d+$/.test(rest) ? Number(rest) : null;
}
