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

/**
 * A look at the bytes before a query text is decoded: whether its first word may start a lone BEGIN / START
 * (or, in a deferred transaction, COMMIT / END / ROLLBACK / ABORT). SELECT and most others are turned away here
 * without a string or a regular expression. Only ASCII white space is skipped, as PostgreSQL's lexer does.
 */
export function mayBeTransactionControl(buf: Buffer, at: number, end: number, inTransaction: boolean): boolean {
  while (at < end && (buf[at] === 0x20 || (buf[at] >= 0x09 && buf[at] <= 0x0d))) at++;
  if (at + 1 >= end) return false;
  // The first two letters, in lower case (| 0x20 turns no other byte into a letter compared here).
  const two = ((buf[at] | 0x20) << 8) | (buf[at + 1] | 0x20);
  if (!inTransaction) return two === 0x6265 /* be */ || two === 0x7374 /* st */;
  return two === 0x636f /* co */ || two === 0x656e /* en */ || two === 0x726f /* ro */ || two === 0x6162 /* ab */;
}

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
