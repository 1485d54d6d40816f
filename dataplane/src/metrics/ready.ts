/**
 * What /readyz answers: ready once the listener is up and at least one pool has reached PostgreSQL
 * (a server login succeeded since start, or a server connection is open now). A pooler whose every
 * PostgreSQL is unreachable accepts clients it cannot serve; a load balancer should not send it any.
 */
import type { ShardSnapshot } from '../admin/view.js';

export interface Readiness {
  ready: boolean;
  reason: string;
}

export function readiness(listening: boolean, snap: Pick<ShardSnapshot, 'pools' | 'stats'>): Readiness {
  if (!listening) return { ready: false, reason: 'not listening for clients (starting or shutting down)' };
  const loggedIn = snap.stats.some((s) => s.totals.serverLogins > 0);
  const open = snap.pools.some((p) => p.svActive + p.svIdle + p.svUsed + p.svTested > 0);
  if (loggedIn || open) return { ready: true, reason: 'listening; a pool has reached its server' };
  if (snap.pools.length === 0) return { ready: false, reason: 'no pool is configured' };
  return { ready: false, reason: 'no pool has reached its PostgreSQL server yet' };
}
