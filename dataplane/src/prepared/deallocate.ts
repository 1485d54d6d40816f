/**
 * Statements that drop prepared statements by name. The names are the client's, which no server knows, so
 * Doorman translates `DEALLOCATE [PREPARE] name` whether it comes as a simple Query or through
 * Parse/Bind/Execute (psycopg 3 sends its cache evictions so). `DEALLOCATE ALL` and `DISCARD ALL` run on the
 * server as they are; Doorman only has to forget, at the right point of a pipeline, what they drop.
 */

const DEALLOCATE = /^\s*DEALLOCATE\s+(?:PREPARE\s+)?("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)\s*;?\s*$/i;
const DISCARD_ALL = /^\s*DISCARD\s+ALL\s*;?\s*$/i;
/** Longer texts are not taken for these statements (a name is at most 63 bytes). */
const MAX_TEXT = 200;

/** The statement name a lone `DEALLOCATE name` drops, as PostgreSQL reads it (unquoted folds to lower case); else null. */
export function deallocateTarget(sql: string): string | null {
  if (sql.length > MAX_TEXT) return null;
  const m = DEALLOCATE.exec(sql);
  if (m === null) return null;
  const raw = m[1];
  if (raw.startsWith('"')) return raw.slice(1, -1).replace(/""/g, '"');
  const name = raw.toLowerCase();
  return name === 'all' ? null : name;
}

/** The CommandComplete tag of a lone `DEALLOCATE ALL` or `DISCARD ALL`, which drop every statement; else null. */
export function dropsAllTag(sql: string): 'DEALLOCATE ALL' | 'DISCARD ALL' | null {
  if (sql.length > MAX_TEXT) return null;
  if (DISCARD_ALL.test(sql)) return 'DISCARD ALL';
  const m = DEALLOCATE.exec(sql);
  return m !== null && m[1].toLowerCase() === 'all' ? 'DEALLOCATE ALL' : null;
}

/** Query text and parameter types (none) of a DEALLOCATE of server statement `name`: a Parse's rest. */
export function deallocateRest(name: string): Buffer {
  return Buffer.from(`DEALLOCATE "${name}"\0\0\0`, 'utf8');
}
