/**
 * Text output of doormanctl: aligned tables, diffs, status and stats. Pure functions of the responses
 * (and the clock, passed in), so the formats are unit-tested.
 */
import type { DiffEntry, HistoryEntry, NodeStatus, NodesResponse, PoolStats, StatsResponse, StatusResponse } from '@doorman/proto/api';

export type Cell = string | number | boolean | null | undefined;

function cellText(v: Cell): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return String(v);
}

/** Columns padded to their widest cell, two spaces apart, no trailing blanks. Numbers align right. */
export function renderTable(headers: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const text = rows.map((r) => headers.map((_, i) => cellText(r[i])));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => r[i].length)));
  const line = (cells: string[], header: boolean): string =>
    cells
      .map((c, i) => (numeric[i] && !header ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line([...headers], true), ...text.map((r) => line(r, false))].join('\n') + '\n';
}

/** A scalar for a table cell; nested values as compact JSON. */
function flat(v: unknown): Cell {
  if (v === null || v === undefined || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  return JSON.stringify(v);
}

/**
 * A table from a list of JSON objects (what `get pools|users|nodes` returns): one column per key, in the
 * order keys first appear. Returns null when the value is not a list of objects.
 */
export function objectsTable(value: unknown): string | null {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'object' && v !== null && !Array.isArray(v))) return null;
  const rows = value as Record<string, unknown>[];
  const keys: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!keys.includes(k)) keys.push(k);
  if (keys.length === 0) return rows.length === 0 ? '(none)\n' : null;
  return renderTable(
    keys.map((k) => k.toUpperCase()),
    rows.map((r) => keys.map((k) => flat(r[k]))),
  );
}

const CHANGE_MARK: Record<string, string> = { added: '+', removed: '-', changed: '~' };

/** One line per entry: `+ pools.app`, `~ pools.app.users.alice.pool_size: 20 -> 30 (restart required)`. */
export function formatDiff(diff: readonly DiffEntry[]): string {
  return diff
    .map((d) => {
      const mark = CHANGE_MARK[d.change] ?? '?';
      let value = '';
      if (d.change === 'changed') value = `: ${d.before} -> ${d.after}`;
      else if (d.change === 'added' && d.after !== '') value = `: ${d.after}`;
      else if (d.change === 'removed' && d.before !== '') value = ` (was ${d.before})`;
      return `${mark} ${d.path}${value}${d.restartRequired ? ' (restart required)' : ''}\n`;
    })
    .join('');
}

/** "4s ago", "3m ago", "2h ago", "5d ago"; "never" for 0. */
export function formatAge(unixMs: number, now: number): string {
  if (unixMs <= 0) return 'never';
  const s = Math.max(0, Math.round((now - unixMs) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86_400)}d ago`;
}

export function formatHistory(entries: readonly HistoryEntry[]): string {
  if (entries.length === 0) return 'no history\n';
  return renderTable(
    ['GENERATION', 'APPLIED', 'AUTHOR', 'SUMMARY'],
    entries.map((e) => [e.generation, new Date(e.appliedAtUnixMs).toISOString(), e.author, e.summary]),
  );
}

function nackCell(n: NodeStatus): string {
  return n.nackError === '' ? '' : `v${n.nackedVersion}`;
}

/** The fleet per node, then every NACK's full reason (multi-line field-path lists do not fit a cell). */
export function formatStatus(s: StatusResponse, now: number): string {
  let out = `generation ${s.generation}, secrets ${s.secretsGeneration}; answered by ${s.replica || '?'}, leader ${s.leader || '(none)'}\n`;
  if (s.nodes.length === 0) return out + 'no data planes registered\n';
  const nodes = [...s.nodes].sort((a, b) => (a.node?.nodeId ?? '').localeCompare(b.node?.nodeId ?? ''));
  out += renderTable(
    ['NODE', 'CONNECTED', 'CONFIG', 'SECRETS', 'NACK', 'LAST SEEN', 'VERSION', 'ATTACHED TO', 'CLIENTS', 'SERVERS'],
    nodes.map((n) => [
      n.node?.nodeId ?? '?',
      n.connected,
      n.ackedConfigVersion,
      n.ackedSecretsVersion,
      nackCell(n),
      formatAge(n.lastSeenUnixMs, now),
      n.node?.version ?? '',
      n.attachedTo,
      n.clients,
      n.servers,
    ]),
  );
  for (const n of nodes) {
    if (n.nackError === '') continue;
    out += `\n${n.node?.nodeId ?? '?'} refused version ${n.nackedVersion}:\n`;
    out += n.nackError.split('\n').map((l) => `  ${l}\n`).join('');
  }
  return out;
}

function labelsText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** `get nodes`: who each node is (labels, version, process) and whether it is connected. */
export function formatNodes(r: NodesResponse, now: number): string {
  if (r.nodes.length === 0) return 'no data planes registered\n';
  const nodes = [...r.nodes].sort((a, b) => (a.node?.nodeId ?? '').localeCompare(b.node?.nodeId ?? ''));
  return renderTable(
    ['NODE', 'CONNECTED', 'LABELS', 'VERSION', 'HOSTNAME', 'PID', 'CONFIG', 'LAST SEEN', 'ATTACHED TO'],
    nodes.map((n) => [
      n.node?.nodeId ?? '?',
      n.connected,
      labelsText(n.node?.labels ?? {}),
      n.node?.version ?? '',
      n.node?.hostname ?? '',
      n.node?.pid ?? 0,
      n.ackedConfigVersion,
      formatAge(n.lastSeenUnixMs, now),
      n.attachedTo,
    ]),
  );
}

const STATS_HEADERS = ['CL ACTIVE', 'CL WAITING', 'SV ACTIVE', 'SV IDLE', 'SV OTHER', 'TRANSACTIONS', 'QUERIES', 'WAIT P99 MS'];

function statsCells(p: PoolStats): Cell[] {
  return [p.clientsActive, p.clientsWaiting, p.serversActive, p.serversIdle, p.serversOther, p.transactionsTotal, p.queriesTotal, p.waitP99Ms];
}

/** Fleet totals per (database, user); with perNode, the per-node rows as well. */
export function formatStats(s: StatsResponse, perNode: boolean): string {
  if (s.totals.length === 0 && s.pools.length === 0) return 'no pool figures reported yet\n';
  const byKey = (a: PoolStats, b: PoolStats): number => a.database.localeCompare(b.database) || a.user.localeCompare(b.user);
  let out = renderTable(
    ['DATABASE', 'USER', 'MODE', ...STATS_HEADERS],
    [...s.totals].sort(byKey).map((p) => [p.database, p.user, p.poolMode, ...statsCells(p)]),
  );
  if (perNode) {
    const rows = s.pools
      .filter((f) => f.pool !== undefined)
      .sort((a, b) => a.nodeId.localeCompare(b.nodeId) || byKey(a.pool!, b.pool!))
      .map((f) => [f.nodeId, f.pool!.database, f.pool!.user, f.pool!.poolMode, ...statsCells(f.pool!)]);
    out += '\n' + renderTable(['NODE', 'DATABASE', 'USER', 'MODE', ...STATS_HEADERS], rows);
  }
  return out;
}
