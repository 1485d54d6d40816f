/**
 * Diff between two secret-free documents (plus their secret sets), on the document as written:
 * users are keyed by username so reordering the list is not a change, and map key order never is.
 * Secret values never appear: a secret diff says only that it was set, removed or changed.
 */
import type { DiffEntry } from '@doorman/proto/api';
import { canonicalJson, userList, type Doc, type SecretSet } from '../secrets/split.js';

/** Fields the data plane reads only at start (listen address, worker count). */
export const RESTART_REQUIRED = ['general.host', 'general.port', 'general.workers', 'general.worker_threads'] as const;

type Tree = Record<string, unknown>;

function isMap(v: unknown): v is Tree {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The document with every pool's users as a map by username (duplicates were rejected by validation). */
export function diffable(doc: Doc): Tree {
  const out = structuredClone(doc);
  if (isMap(out.pools)) {
    for (const pool of Object.values(out.pools)) {
      if (!isMap(pool) || pool.users === undefined) continue;
      const byName: Tree = {};
      for (const user of userList(pool)) {
        const { username, ...rest } = user;
        byName[typeof username === 'string' ? username : String(username)] = rest;
      }
      pool.users = byName;
    }
  }
  return out;
}

function show(v: unknown): string {
  if (v === undefined) return '';
  return typeof v === 'string' ? v : canonicalJson(v);
}

function restartRequired(path: string): boolean {
  return RESTART_REQUIRED.some((p) => path === p || path.startsWith(`${p}.`));
}

function entry(change: 'added' | 'removed' | 'changed', path: string, before: unknown, after: unknown): DiffEntry {
  return { change, path, before: show(before), after: show(after), restartRequired: restartRequired(path) };
}

function walk(before: unknown, after: unknown, path: string, out: DiffEntry[]): void {
  if (isMap(before) && isMap(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    for (const key of keys) {
      const child = path === '' ? key : `${path}.${key}`;
      const b = before[key];
      const a = after[key];
      if (b === undefined && a !== undefined) out.push(entry('added', child, undefined, a));
      else if (b !== undefined && a === undefined) out.push(entry('removed', child, b, undefined));
      else walk(b, a, child, out);
    }
    return;
  }
  if (canonicalJson(before) !== canonicalJson(after)) out.push(entry('changed', path, before, after));
}

function secretEntries(before: SecretSet, after: SecretSet, out: DiffEntry[]): void {
  const compare = (path: string, b: string, a: string): void => {
    if (b === a) return;
    if (b === '') out.push({ change: 'added', path, before: '', after: '[set]', restartRequired: false });
    else if (a === '') out.push({ change: 'removed', path, before: '[set]', after: '', restartRequired: false });
    else out.push({ change: 'changed', path, before: '[set]', after: '[set]', restartRequired: false });
  };
  compare('secrets.general.admin_password', before.adminPassword, after.adminPassword);
  const dbs = [...new Set([...Object.keys(before.users), ...Object.keys(after.users)])].sort();
  for (const db of dbs) {
    const b = before.users[db] ?? {};
    const a = after.users[db] ?? {};
    for (const user of [...new Set([...Object.keys(b), ...Object.keys(a)])].sort()) {
      compare(`secrets.${db}.${user}.password`, b[user]?.password ?? '', a[user]?.password ?? '');
      compare(`secrets.${db}.${user}.server_password`, b[user]?.serverPassword ?? '', a[user]?.serverPassword ?? '');
    }
  }
}

/** Every difference from (beforeDoc, beforeSecrets) to (afterDoc, afterSecrets), config first. */
export function diffDocuments(beforeDoc: Doc, beforeSecrets: SecretSet, afterDoc: Doc, afterSecrets: SecretSet): DiffEntry[] {
  const out: DiffEntry[] = [];
  walk(diffable(beforeDoc), diffable(afterDoc), '', out);
  secretEntries(beforeSecrets, afterSecrets, out);
  return out;
}

/** "apply: 1 added, 0 removed, 2 changed" (kind is apply, rollback to N, delete ...). */
export function summarize(kind: string, diff: readonly DiffEntry[]): string {
  const count = (c: string): number => diff.filter((d) => d.change === c).length;
  return `${kind}: ${count('added')} added, ${count('removed')} removed, ${count('changed')} changed`;
}
