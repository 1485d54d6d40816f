/**
 * What a reload does to the pools, counted by (database, user): kept (server-side settings unchanged, so
 * connections stay), replaced (changed: a new pool, the old one drains), added, removed.
 */
import { userFingerprint, type DoormanConfig } from '@doorman/proto';

export interface PoolDiff {
  kept: number;
  replaced: number;
  added: number;
  removed: number;
}

export function diffPools(old: DoormanConfig, next: DoormanConfig): PoolDiff {
  const before = new Map<string, string>();
  for (const db of Object.values(old.pools)) for (const u of db.users) before.set(`${db.name}\0${u.username}`, userFingerprint(db, u));
  const out: PoolDiff = { kept: 0, replaced: 0, added: 0, removed: 0 };
  for (const db of Object.values(next.pools)) {
    for (const u of db.users) {
      const key = `${db.name}\0${u.username}`;
      const prev = before.get(key);
      if (prev === undefined) out.added++;
      else if (prev === userFingerprint(db, u)) out.kept++;
      else out.replaced++;
      before.delete(key);
    }
  }
  out.removed = before.size;
  return out;
}
