/**
 * Session parameters a client expects to keep while its transactions run on different server connections.
 *
 * Keys are lower-case GUC names. Parameters PostgreSQL reports with ParameterStatus are learnt from the
 * server; the others (extra_float_digits, search_path, ...) are known only because Doorman set them itself.
 * When a client is linked to a server whose values differ, Doorman sends one set_config()/RESET query first.
 */

/** Reported (GUC_REPORT) parameters a session may change, with the spelling PostgreSQL reports. */
const REPORTED_SETTABLE: ReadonlyMap<string, string> = new Map([
  ['client_encoding', 'client_encoding'],
  ['datestyle', 'DateStyle'],
  ['timezone', 'TimeZone'],
  ['intervalstyle', 'IntervalStyle'],
  ['standard_conforming_strings', 'standard_conforming_strings'],
  ['application_name', 'application_name'],
  ['default_transaction_read_only', 'default_transaction_read_only'],
]);

/** Startup keys that are not session parameters at all. */
const NOT_PARAMETERS = new Set(['user', 'database', 'options', 'replication']);

const GUC_NAME = /^[A-Za-z_][A-Za-z0-9_.]*$/;

export type ParamMap = Map<string, string>;

/**
 * A parameter map that counts its changes, so that what was computed from it can be kept until it changes:
 * a client's wanted values and a server's reported and extra ones.
 */
export class VersionedParams extends Map<string, string> {
  version = 0;
  private keyVersion = -1;
  private key = '';

  /** A copy of `shared` whose content key is already known. */
  static of(shared: SharedParams): VersionedParams {
    const p = new VersionedParams(shared.values);
    p.key = shared.key;
    p.keyVersion = p.version;
    return p;
  }

  override set(key: string, value: string): this {
    if (super.get(key) !== value) this.version++;
    return super.set(key, value);
  }

  override delete(key: string): boolean {
    const had = super.delete(key);
    if (had) this.version++;
    return had;
  }

  override clear(): void {
    if (this.size > 0) this.version++;
    super.clear();
  }

  /** The content as one string: equal strings, equal maps (insertion order aside). */
  contentKey(): string {
    if (this.keyVersion !== this.version) {
      this.key = contentKeyOf(this);
      this.keyVersion = this.version;
    }
    return this.key;
  }
}

/** A map's content as one string: equal strings, equal maps (insertion order aside). */
export function contentKeyOf(values: ParamMap): string {
  // Names and values never hold NUL, so NUL between them cannot be confused with their own bytes.
  return [...values]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}\0${v}`)
    .join('\0');
}

/** One set of values shared by every client that logged in with it. Never modified. */
export interface SharedParams {
  readonly key: string;
  readonly values: ReadonlyMap<string, string>;
}

/** Distinct sets kept per thread; past this the table starts again (the values come from clients). */
const SHARED_LIMIT = 1024;
const shared = new Map<string, SharedParams>();

/**
 * The shared copy of `values`: most clients of an application log in with the same values, and 10,000
 * clients each holding their own maps and strings made every full GC longer.
 */
export function sharedParams(values: ParamMap): SharedParams {
  const key = contentKeyOf(values);
  let s = shared.get(key);
  if (s === undefined) {
    if (shared.size >= SHARED_LIMIT) shared.clear();
    s = { key, values };
    shared.set(key, s);
  }
  return s;
}

/** What one server connection last agreed with: the content of a client's wanted values, and its own versions then. */
export class Agreement {
  wanted = '';
  status = -1;
  extra = -1;
}

export function isReported(key: string): boolean {
  return REPORTED_SETTABLE.has(key);
}

/** The spelling PostgreSQL uses in ParameterStatus for a lower-case key. */
export function reportedName(key: string): string {
  return REPORTED_SETTABLE.get(key) ?? key;
}

/**
 * Splits a libpq `options` string ("-c geqo=off --search_path=x") into parameters. Backslash escapes a
 * space, as in PostgreSQL. Throws on anything but -c / -- settings, which a pooler cannot honour.
 */
export function parseOptions(options: string): ParamMap {
  const words: string[] = [];
  let cur = '';
  let escaped = false;
  let has = false;
  for (const ch of options) {
    if (escaped) {
      cur += ch;
      escaped = false;
      has = true;
    } else if (ch === '\\') {
      escaped = true;
    } else if (ch === ' ' || ch === '\t' || ch === '\n') {
      if (has) words.push(cur);
      cur = '';
      has = false;
    } else {
      cur += ch;
      has = true;
    }
  }
  if (has) words.push(cur);
  const out: ParamMap = new Map();
  for (let i = 0; i < words.length; i++) {
    let setting: string | undefined;
    const w = words[i];
    if (w === '-c') setting = words[++i];
    else if (w.startsWith('-c')) setting = w.slice(2);
    else if (w.startsWith('--')) setting = w.slice(2);
    if (setting === undefined) throw new Error(`unsupported option "${w}" in options (only -c name=value is supported)`);
    const eq = setting.indexOf('=');
    if (eq <= 0) throw new Error(`invalid setting "${setting}" in options: expected name=value`);
    out.set(setting.slice(0, eq).toLowerCase().replace(/-/g, '_'), setting.slice(eq + 1));
  }
  return out;
}

/**
 * The parameters a client asks for at startup, validated. `_pq_.` protocol options are returned separately
 * so the caller can answer them with NegotiateProtocolVersion.
 */
export function startupParameters(params: Map<string, string>): { wanted: ParamMap; protocolOptions: string[] } {
  const wanted: ParamMap = new Map();
  const protocolOptions: string[] = [];
  for (const [rawKey, value] of params) {
    if (rawKey.startsWith('_pq_.')) {
      protocolOptions.push(rawKey);
      continue;
    }
    const key = rawKey.toLowerCase();
    if (NOT_PARAMETERS.has(key)) continue;
    if (!GUC_NAME.test(rawKey)) throw new Error(`invalid parameter name "${rawKey}"`);
    wanted.set(key, value);
  }
  const options = params.get('options');
  if (options !== undefined && options.trim() !== '') {
    for (const [k, v] of parseOptions(options)) {
      if (!GUC_NAME.test(k)) throw new Error(`invalid parameter name "${k}" in options`);
      if (!wanted.has(k)) wanted.set(k, v);
    }
  }
  return { wanted, protocolOptions };
}

function quoteLiteral(v: string): string {
  return "'" + v.replace(/'/g, "''") + "'";
}

/**
 * The query that turns a server's parameters into the ones the client wants, or null when they agree.
 * `wanted` holds every reported parameter (pool defaults included) plus the unreported ones the client set;
 * `status` is what the server reported, `extra` the unreported values Doorman set on it. An unreported
 * parameter the server holds but the client did not ask for is RESET.
 */
export function syncQuery(wanted: ParamMap, status: ParamMap, extra: ParamMap): string | null {
  if (agree(wanted, status, extra)) return null;
  // set_config() takes the value as one string, as a startup packet does: `SET search_path TO 'a,b'` would
  // make a single schema named "a,b" of it.
  let sets = '';
  for (const [k, v] of wanted) {
    const current = isReported(k) ? status.get(k) : extra.get(k);
    if (current !== v) sets += `${sets === '' ? 'SELECT ' : ', '}set_config(${quoteLiteral(k)}, ${quoteLiteral(v)}, false)`;
  }
  let q = sets === '' ? '' : sets + ';';
  for (const k of extra.keys()) {
    if (!wanted.has(k)) q += `RESET ${k};`;
  }
  return q === '' ? null : q;
}

// agree() runs at every attach: Map.forEach with a callback that is not a closure allocates nothing, where
// for...of over entries made an array per entry (the top allocation site in a heap profile of pgbench).
let cmpStatus: ParamMap = new Map();
let cmpExtra: ParamMap = cmpStatus;
let cmpDiffer = false;
let cmpUnreported = 0;

function compareOne(value: string, key: string): void {
  if (cmpDiffer) return;
  if (isReported(key)) {
    if (cmpStatus.get(key) !== value) cmpDiffer = true;
  } else if (cmpExtra.get(key) !== value) {
    cmpDiffer = true;
  } else {
    cmpUnreported++;
  }
}

/** The server already holds what the client wants, and no unreported value the client did not ask for. */
function agree(wanted: ParamMap, status: ParamMap, extra: ParamMap): boolean {
  cmpStatus = status;
  cmpExtra = extra;
  cmpDiffer = false;
  cmpUnreported = 0;
  wanted.forEach(compareOne);
  // Every unreported key the client wants matched one in `extra`: any more there is one to RESET.
  return !cmpDiffer && cmpUnreported === extra.size;
}

/**
 * syncQuery for a server connection that remembers its last agreement: clients with the same wanted values
 * (most clients of an application) cost a string comparison instead of a comparison per parameter.
 */
export function syncQueryFor(wanted: VersionedParams, status: VersionedParams, extra: VersionedParams, agreement: Agreement): string | null {
  const key = wanted.contentKey();
  if (agreement.wanted === key && agreement.status === status.version && agreement.extra === extra.version) return null;
  const q = syncQuery(wanted, status, extra);
  if (q === null) {
    agreement.wanted = key;
    agreement.status = status.version;
    agreement.extra = extra.version;
  }
  return q;
}

/**
 * Parameters that change what a statement's text means when PostgreSQL parses it: how its bytes decode,
 * which schema a name resolves in, how a literal reads. Statements are shared between clients only under
 * equal values (application_name and the like do not matter).
 */
const PARSE_CONTEXT = ['client_encoding', 'datestyle', 'intervalstyle', 'search_path', 'standard_conforming_strings', 'timezone'];

/** The values of `wanted` that PostgreSQL parses a statement under, as one string: equal strings, equal meaning. */
export function parseContextOf(wanted: ParamMap): string {
  let out = '';
  for (const k of PARSE_CONTEXT) {
    const v = wanted.get(k);
    if (v !== undefined) out += `${k}=${v}\0`;
  }
  return out;
}

/** After a sync query succeeds the server holds the client's unreported values (reported ones arrive as ParameterStatus). */
export function applySync(wanted: ParamMap, extra: ParamMap): void {
  extra.clear();
  for (const [k, v] of wanted) if (!isReported(k)) extra.set(k, v);
}

/** RESET ALL returns unreported parameters to their defaults; reported ones are re-announced by the server. */
export function forgetUnreported(extra: ParamMap): void {
  extra.clear();
}
