/**
 * Server reset on check-in, done only for what the transaction left behind.
 *
 * CommandComplete tags tell what a client did to the session; each flag names the statement that undoes it.
 * A read-only transaction leaves no flag and pays nothing. Session mode always uses DISCARD ALL.
 */

export const enum Dirty {
  None = 0,
  /** SET (not SET LOCAL, which ends with the transaction; the tag is the same, so both count). */
  Settings = 1,
  /** DECLARE CURSOR (a WITH HOLD cursor outlives the transaction). */
  Cursors = 2,
  /** SQL PREPARE, or a named Parse passed through untouched. */
  Prepared = 4,
  /** LISTEN. */
  Listen = 8,
  /** Anything only DISCARD ALL undoes. */
  Everything = 16,
}

const TAGS: ReadonlyArray<[Buffer, number, number]> = [
  // tag with its terminating NUL, flags set, flags cleared
  [Buffer.from('SET\0'), Dirty.Settings, 0],
  [Buffer.from('DECLARE CURSOR\0'), Dirty.Cursors, 0],
  [Buffer.from('CLOSE CURSOR ALL\0'), 0, Dirty.Cursors],
  [Buffer.from('PREPARE\0'), Dirty.Prepared, 0],
  [Buffer.from('DEALLOCATE ALL\0'), 0, Dirty.Prepared],
  [Buffer.from('LISTEN\0'), Dirty.Listen, 0],
  [Buffer.from('DISCARD ALL\0'), 0, Dirty.Settings | Dirty.Cursors | Dirty.Prepared | Dirty.Listen | Dirty.Everything],
  [Buffer.from('DISCARD TEMP\0'), 0, 0],
];

/** The tags above by length (with the NUL): most CommandCompletes have a length no tag has and cost one lookup. */
const TAGS_BY_LENGTH: ReadonlyArray<ReadonlyArray<[Buffer, number, number]>> = (() => {
  const byLength: [Buffer, number, number][][] = [];
  for (const t of TAGS) (byLength[t[0].length] ??= []).push(t);
  for (let i = 0; i < byLength.length; i++) byLength[i] ??= [];
  return byLength;
})();

/** New dirty flags after a CommandComplete at buf[start..end) (buf[start] = 'C'). */
export function dirtyAfterCommand(flags: number, buf: Buffer, start: number, end: number): number {
  const bodyLen = end - start - 5;
  if (bodyLen < 0 || bodyLen >= TAGS_BY_LENGTH.length) return flags;
  const candidates = TAGS_BY_LENGTH[bodyLen];
  for (let i = 0; i < candidates.length; i++) {
    const t = candidates[i];
    if (buf.compare(t[0], 0, bodyLen, start + 5, end) === 0) return (flags | t[1]) & ~t[2];
  }
  return flags;
}

const NOTHING_TO_RESET: readonly string[] = [];

/**
 * The statements that reset a server, each to be sent as its own Query (DISCARD ALL refuses to run in the
 * implicit transaction block a multi-statement query opens). `txStatus` is the last ReadyForQuery status.
 */
export function resetStatements(flags: number, txStatus: number, sessionMode: boolean): readonly string[] {
  // The common case, at every check-in: nothing to undo, and no array made for it.
  if (flags === Dirty.None && txStatus === 0x49 /* 'I' */ && !sessionMode) return NOTHING_TO_RESET;
  const out: string[] = [];
  if (txStatus !== 0x49 /* 'I' */) out.push('ROLLBACK');
  if (sessionMode || (flags & Dirty.Everything) !== 0) {
    out.push('DISCARD ALL');
    return out;
  }
  if (flags & Dirty.Settings) out.push('SET SESSION AUTHORIZATION DEFAULT', 'RESET ALL');
  if (flags & Dirty.Cursors) out.push('CLOSE ALL');
  if (flags & Dirty.Prepared) out.push('DEALLOCATE ALL');
  if (flags & Dirty.Listen) out.push('UNLISTEN *');
  return out;
}

const TAG_RESET = Buffer.from('RESET\0');
const TAG_DISCARD_ALL = Buffer.from('DISCARD ALL\0');

/** RESET and DISCARD ALL return parameters to the session's defaults (CommandComplete at buf[start..end)). */
export function resetsParameters(buf: Buffer, start: number, end: number): boolean {
  const n = end - start - 5;
  return (
    (n === TAG_RESET.length && buf.compare(TAG_RESET, 0, n, start + 5, end) === 0) ||
    (n === TAG_DISCARD_ALL.length && buf.compare(TAG_DISCARD_ALL, 0, n, start + 5, end) === 0)
  );
}
