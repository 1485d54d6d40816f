/**
 * Transaction-mode prepared statements: a pool-wide registry of server-side statements keyed by query
 * text and parameter types, and per server connection the set of them it holds (least recently used first).
 */
import { cstring } from '../protocol/codes.js';
import { buildParse, describeStatement } from '../protocol/extended.js';
import { beginTag, transactionEndTag } from '../session/begin.js';
import { deallocateTarget, dropsAllTag } from './deallocate.js';

export interface PreparedStatement {
  /** Name on every server connection of the pool that holds it. */
  readonly name: string;
  /** The parameters it is parsed under (session/params.ts parseContextOf): clients share it only under the same. */
  readonly context: string;
  /** The Parse message under `name`, sent to a server that does not hold it yet. */
  readonly parse: Buffer;
  /** Where the query text and parameter types begin in `parse`. */
  readonly restAt: number;
  /** `name` and its NUL, copied into every Bind rewritten to it. */
  readonly nameZ: Buffer;
  /** Describe of it under `name`. */
  readonly describe: Buffer;
  /** A server accepted it once: a later Parse of it can be answered without a server. */
  validated: boolean;
  /** Its text when it is a lone BEGIN / START TRANSACTION (deferrable), else null. */
  readonly begin: string | null;
  /** 'COMMIT' or 'ROLLBACK' when it is a lone transaction end, else null. */
  readonly end: 'COMMIT' | 'ROLLBACK' | null;
  /** The client statement name a lone `DEALLOCATE name` drops, else null. */
  readonly deallocates: string | null;
  /** The tag of a lone `DEALLOCATE ALL` / `DISCARD ALL`, else null. */
  readonly dropsAll: 'DEALLOCATE ALL' | 'DISCARD ALL' | null;
  /** Parses of it answered without preparing it again (SHOW PREPARED_STATEMENTS). */
  hits: number;
  /** How many parameters PostgreSQL found in it (its ParameterDescription); -1 until a server has described it. */
  paramCount: number;
  /**
   * For a statement that returns no rows (BEGIN, DEALLOCATE, ...), the ParameterDescription and NoData it is
   * described with, else null. PostgreSQL describes such a statement even in an aborted transaction, where
   * preparing it again on a server that lost it would fail.
   */
  noRowsDescription: Buffer | null;
  /** No longer registered for its text (its result type changed): a new Parse of the text gets another statement. */
  retired: boolean;
}

/** The pool's prepared-statement counters (kept in its PoolStats, so they survive a reload). */
export interface PreparedCounters {
  preparedHits: number;
  preparedMisses: number;
  preparedEvictions: number;
}

/** One registered statement as SHOW PREPARED_STATEMENTS lists it. */
export interface PreparedEntry {
  name: string;
  /** The query text, cut to `maxText` characters. */
  text: string;
  hits: number;
}

let nextStatement = 1;

/** One per pool. Entries dropped beyond the limit stay valid for whoever holds them; only reuse is lost. */
export class StatementRegistry {
  private readonly byKey = new Map<string, PreparedStatement>();

  constructor(
    public limit: number,
    readonly counters: PreparedCounters = { preparedHits: 0, preparedMisses: 0, preparedEvictions: 0 },
  ) {}

  /** A Parse of `st` needed no preparing on the server. */
  hit(st: PreparedStatement): void {
    st.hits++;
    this.counters.preparedHits++;
  }

  /** Every registered statement, most recently registered last. */
  entries(maxText: number): PreparedEntry[] {
    const out: PreparedEntry[] = [];
    for (const st of this.byKey.values()) {
      const nul = st.parse.indexOf(0, st.restAt);
      const text = st.parse.toString('utf8', st.restAt, nul < 0 ? st.parse.length : nul);
      out.push({ name: st.name, text: text.length > maxText ? `${text.slice(0, maxText - 3)}...` : text, hits: st.hits });
    }
    return out;
  }

  get size(): number {
    return this.byKey.size;
  }

  /** The statement already registered for this query text and parameter types under `context`, if any. */
  find(buf: Buffer, restStart: number, end: number, context = ''): PreparedStatement | undefined {
    return this.byKey.get(keyOf(buf.toString('latin1', restStart, end), context));
  }

  /** The statement for a Parse whose query text and parameter types are buf[restStart, end), under `context`. */
  lookup(buf: Buffer, restStart: number, end: number, context = ''): PreparedStatement {
    // latin1 maps bytes 1:1, so the key is exact for any client encoding and cheap to build.
    const key = keyOf(buf.toString('latin1', restStart, end), context);
    let st = this.byKey.get(key);
    if (st === undefined) {
      const name = `DOORMAN_${nextStatement++}`;
      // The rest is query text, NUL, int16 count of parameter types: a lone BEGIN/COMMIT has none.
      const paramless = end - restStart < 256 && end - restStart >= 3 && buf[end - 3] === 0 && buf.readInt16BE(end - 2) === 0;
      const text = paramless ? buf.toString('utf8', restStart, end - 3) : '';
      const parse = buildParse(name, buf.subarray(restStart, end));
      st = {
        name,
        context,
        parse,
        restAt: parse.length - (end - restStart),
        nameZ: cstring(name),
        describe: describeStatement(name),
        validated: false,
        begin: paramless && beginTag(text) !== null ? text : null,
        end: paramless ? transactionEndTag(text) : null,
        deallocates: paramless ? deallocateTarget(text) : null,
        dropsAll: paramless ? dropsAllTag(text) : null,
        hits: 0,
        paramCount: -1,
        noRowsDescription: null,
        retired: false,
      };
      if (this.byKey.size >= this.limit) this.byKey.delete(this.byKey.keys().next().value as string);
      this.byKey.set(key, st);
    }
    return st;
  }

  /**
   * Registers nothing for `st`'s text any more: the next Parse of it gets a new server statement. Names that
   * point at `st` keep it.
   */
  retire(st: PreparedStatement): void {
    st.retired = true;
    const key = keyOf(st.parse.toString('latin1', st.restAt), st.context);
    if (this.byKey.get(key) === st) this.byKey.delete(key);
  }
}

/**
 * A registry key. The rest of a Parse (text, NUL, parameter count, types) reads unambiguously on its own,
 * so whatever follows it cannot make two keys collide.
 */
function keyOf(rest: string, context: string): string {
  return context === '' ? rest : `${rest}\0${context}`;
}

/** The longest query text and parameter types compared byte by byte in JavaScript; longer ones go to memcmp. */
const SHORT_REST = 64;

/** Whether buf[restStart, end) is the query text and parameter types of `st`: without building a key. */
export function isStatementOf(st: PreparedStatement, buf: Buffer, restStart: number, end: number): boolean {
  const p = st.parse;
  const len = end - restStart;
  if (p.length - st.restAt !== len) return false;
  if (len > SHORT_REST) return buf.compare(p, st.restAt, p.length, restStart, end) === 0;
  for (let i = 0, j = st.restAt; i < len; i++, j++) if (buf[restStart + i] !== p[j]) return false;
  return true;
}

/**
 * The statements one server connection holds, each with the tick of its last use. Updating a tick is a Map
 * write in place; keeping a Set in use order meant a delete and an add per use, the top JavaScript entry in a
 * profile of one statement per transaction. Finding the victim walks the Map, but only when one must go.
 */
export class ServerStatements {
  private held = new Map<PreparedStatement, number>();
  private clock = 0;

  get size(): number {
    return this.held.size;
  }

  has(st: PreparedStatement): boolean {
    return this.held.has(st);
  }

  use(st: PreparedStatement): void {
    this.held.set(st, ++this.clock);
  }

  delete(st: PreparedStatement): void {
    this.held.delete(st);
  }

  clear(): void {
    this.held.clear();
  }

  /** Empties the set and returns what it held, for `restore` if the server does not drop them after all. */
  takeAll(): Map<PreparedStatement, number> {
    const held = this.held;
    this.held = new Map();
    return held;
  }

  restore(held: Map<PreparedStatement, number>): void {
    this.held = held;
  }

  /**
   * The least recently used statement other than `keep`. Evicting one a later message of the same pipeline
   * needs is safe: that message finds it missing and prepares it again first.
   */
  victim(keep: PreparedStatement, alsoKeep: PreparedStatement | null = null): PreparedStatement | null {
    let oldest: PreparedStatement | null = null;
    let oldestTick = Infinity;
    for (const [st, tick] of this.held) {
      if (st !== keep && st !== alsoKeep && tick < oldestTick) {
        oldest = st;
        oldestTick = tick;
      }
    }
    return oldest;
  }
}
