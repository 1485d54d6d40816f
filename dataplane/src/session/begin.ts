/**
 * Recognises statements Doorman may answer itself in transaction mode: a lone BEGIN / START TRANSACTION
 * (deferred until the next statement) and the COMMIT / ROLLBACK of a transaction that never reached a server.
 * Only texts matching PostgreSQL's grammar exactly are taken, so a deferred BEGIN cannot fail later.
 */

const MODE = String.raw`(?:ISOLATION\s+LEVEL\s+(?:SERIALIZABLE|REPEATABLE\s+READ|READ\s+COMMITTED|READ\s+UNCOMMITTED)|READ\s+ONLY|READ\s+WRITE|NOT\s+DEFERRABLE|DEFERRABLE)`;
const BEGIN = new RegExp(
  String.raw`^\s*(?:BEGIN(?:\s+(?:WORK|TRANSACTION))?|START\s+TRANSACTION)(?:\s+${MODE}(?:(?:\s*,\s*|\s+)${MODE})*)?\s*;?\s*$`,
  'i',
);
const END = /^\s*(COMMIT|END|ROLLBACK|ABORT)(?:\s+(?:WORK|TRANSACTION))?\s*;?\s*$/i;

/** The tag PostgreSQL answers a lone BEGIN / START TRANSACTION with, or null for any other text. */
export function beginTag(sql: string): 'BEGIN' | 'START TRANSACTION' | null {
  if (sql.length >= 200 || !BEGIN.test(sql)) return null;
  return /^\s*START/i.test(sql) ? 'START TRANSACTION' : 'BEGIN';
}

/** 'COMMIT' or 'ROLLBACK' (the tag PostgreSQL answers with) for a lone transaction end, else null. */
export function transactionEndTag(sql: string): 'COMMIT' | 'ROLLBACK' | null {
  if (sql.length > 40) return null;
  const m = END.exec(sql);
  if (m === null) return null;
  const word = m[1].toUpperCase();
  return word === 'COMMIT' || word === 'END' ? 'COMMIT' : 'ROLLBACK';
}
