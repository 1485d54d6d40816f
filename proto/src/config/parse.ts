import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { DEFAULT_GENERAL, DEFAULT_POOL, DEFAULT_USER, LIMITS, RESERVED_DATABASE_NAMES } from './defaults.js';
import { parseDuration } from './duration.js';
import { ConfigError, describeValue } from './errors.js';
import { parseSize } from './size.js';
import type {
  ClientTlsMode,
  ConfigIssue,
  DoormanConfig,
  GeneralConfig,
  LogFormat,
  MetricsConfig,
  PoolConfig,
  PoolMode,
  ServerTlsMode,
  UserConfig,
} from './types.js';

export type WarningHandler = (path: string, message: string) => void;

export interface ParseOptions {
  /** Relative file paths in the config (TLS files, pg_hba.path) resolve against this; default: the working directory. */
  baseDir?: string;
  /** Reads pg_hba `{ path }` files; default: node:fs, UTF-8. */
  readFile?: (p: string) => string;
  /** Told about accepted-but-ignored PgDoorman settings and other non-fatal findings. */
  onWarning?: WarningHandler;
}

type YamlMap = Record<string, unknown>;

// Keys each section understands. PgDoorman aliases sit beside their Doorman names.
const TOP_KEYS = ['general', 'metrics', 'pools'] as const;
const METRICS_KEYS = ['listen'] as const;
const GENERAL_KEYS = [
  'host', 'port', 'admin_username', 'admin_password', 'max_client_conn', 'max_connections', 'workers',
  'worker_threads', 'connect_timeout', 'client_login_timeout', 'query_wait_timeout', 'server_idle_timeout', 'idle_timeout',
  'server_lifetime', 'server_idle_check_timeout', 'server_check_delay', 'shutdown_timeout',
  'reserve_pool_timeout', 'max_message_size', 'max_buffered_bytes', 'tls_mode', 'tls_certificate',
  'tls_private_key', 'server_tls_mode', 'server_tls_ca_cert', 'pg_hba', 'hba', 'log_level', 'log_format',
  'application_name', 'tcp_keepalive', 'tcp_no_delay', 'prepared_statements', 'prepared_statements_cache_size',
  'max_prepared_statements', 'server_prepared_statements_cache_size',
] as const;
const POOL_KEYS = [
  'server_host', 'server_port', 'server_database', 'pool_mode', 'query_wait_timeout', 'server_tls_mode',
  'application_name', 'server_lifetime', 'users',
] as const;
const USER_KEYS = [
  'username', 'password', 'pool_size', 'min_pool_size', 'reserve_pool_size', 'pool_mode', 'server_username',
  'server_password', 'server_lifetime', 'auth_pam_service',
] as const;

// PgDoorman settings Doorman does not implement: accepted so existing configs load, reported as warnings.
const TOP_IGNORED = ['web', 'prometheus', 'talos', 'include'] as const;
const GENERAL_IGNORED = [
  'tokio_global_queue_interval', 'tokio_event_interval', 'tcp_keepalives_idle', 'tcp_keepalives_count',
  'tcp_keepalives_interval', 'tcp_so_linger', 'tcp_user_timeout', 'tcp_socket_buffer_size',
  'unix_socket_buffer_size', 'unix_socket_dir', 'unix_socket_mode', 'log_client_connections',
  'log_client_disconnections', 'message_size_to_be_stream', 'max_memory_usage', 'max_concurrent_creates',
  'scaling_warm_pool_ratio', 'scaling_fast_retries', 'scaling_max_parallel_creates', 'scaling_cooldown_sleep',
  'retain_connections_time', 'retain_connections_max', 'server_round_robin', 'sync_server_parameters',
  'proxy_copy_data_timeout', 'worker_cpu_affinity_pinning', 'worker_stack_size', 'max_blocking_threads',
  'backlog', 'pooler_check_query', 'tls_ca_cert', 'tls_rate_limit_per_second', 'server_tls_certificate',
  'server_tls_private_key', 'patroni_api_urls', 'fallback_cooldown', 'patroni_api_timeout',
  'fallback_connect_timeout', 'fallback_lifetime', 'client_anonymous_prepared_cache_size',
  'client_prepared_statements_cache_size', 'query_interner_gc_interval_seconds',
  'query_interner_anon_idle_ttl_seconds', 'daemon_pid_file', 'syslog_prog_name', 'startup_parameters', 'talos',
] as const;
const POOL_IGNORED = [
  'connect_timeout', 'idle_timeout', 'cleanup_server_connections', 'log_client_parameter_status_changes',
  'prepared_statements_cache_size', 'server_prepared_statements_cache_size', 'scaling_warm_pool_ratio',
  'scaling_fast_retries', 'scaling_cooldown_sleep', 'max_db_connections', 'min_connection_lifetime',
  'reserve_pool_size', 'reserve_pool_timeout', 'min_guaranteed_pool_size', 'patroni_api_urls',
  'fallback_cooldown', 'patroni_api_timeout', 'fallback_connect_timeout', 'fallback_lifetime',
  'server_tls_ca_cert', 'server_tls_certificate', 'server_tls_private_key', 'auth_query', 'startup_parameters',
] as const;

const POOL_MODES: readonly PoolMode[] = ['transaction', 'session'];
const CLIENT_TLS_MODES = ['disable', 'allow', 'prefer', 'require'] as const;
const SERVER_TLS_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
const LOG_LEVELS: readonly GeneralConfig['logLevel'][] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];
const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];
const JWT_PASSWORD_PREFIX = 'jwt-pkey-fpath:';

/** Issues are collected rather than thrown so one run reports everything wrong with a file. */
class Collector {
  readonly issues: ConfigIssue[] = [];

  constructor(private readonly onWarning: WarningHandler | undefined) {}

  issue(path: string, message: string): void {
    this.issues.push({ path, message });
  }

  warn(path: string, message: string): void {
    this.onWarning?.(path, message);
  }
}

/** `parent.key`, or `parent["odd key"]` when the key would make the dotted path ambiguous. */
function keyPath(parent: string, key: string): string {
  if (/^[A-Za-z0-9_-]+$/.test(key)) return parent === '' ? key : `${parent}.${key}`;
  return `${parent}[${JSON.stringify(key)}]`;
}

function isMap(v: unknown): v is YamlMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** YAML `~` and an absent key both mean "use the default". */
function isUnset(v: unknown): v is null | undefined {
  return v === null || v === undefined;
}

function isEmpty(v: unknown): boolean {
  return isUnset(v) || (Array.isArray(v) && v.length === 0) || (isMap(v) && Object.keys(v).length === 0);
}

/** Optimal-string-alignment distance: edits, with a swap of neighbours counting as one ("prot" → "port"). */
function editDistance(a: string, b: string): number {
  const d: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    d.push([]);
    for (let j = 0; j <= b.length; j++) {
      if (i === 0 || j === 0) {
        d[i].push(i + j);
        continue;
      }
      let best = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2][j - 2] + 1);
      d[i].push(best);
    }
  }
  return d[a.length][b.length];
}

function suggest(key: string, candidates: readonly string[]): string | null {
  const wanted = key.toLowerCase();
  let best: string | null = null;
  let bestDistance = Math.max(1, Math.floor(key.length / 3)) + 1;
  for (const c of candidates) {
    const dist = editDistance(wanted, c);
    if (dist < bestDistance) {
      best = c;
      bestDistance = dist;
    }
  }
  return best;
}

/** Flags unknown keys (with a spelling suggestion) and warns about set-but-ignored PgDoorman keys. */
function checkKeys(c: Collector, m: YamlMap, path: string, known: readonly string[], ignored: readonly string[]): void {
  for (const key of Object.keys(m)) {
    if (known.includes(key)) continue;
    const at = keyPath(path, key);
    if (ignored.includes(key)) {
      if (!isEmpty(m[key])) c.warn(at, 'is a PgDoorman setting that Doorman does not implement; ignored');
      continue;
    }
    const hint = suggest(key, [...known, ...ignored]);
    c.issue(at, hint === null ? 'unknown field' : `unknown field (did you mean "${hint}"?)`);
  }
}

/** A section that must be a map; anything else is reported and treated as empty so its defaults still apply. */
function section(c: Collector, v: unknown, path: string, what: string): YamlMap {
  if (isUnset(v)) return {};
  if (isMap(v)) return v;
  c.issue(path, `must be ${what}, got ${describeValue(v)}`);
  return {};
}

/** The key actually used for a setting that PgDoorman spells differently; both set at once is an issue. */
function aliased(c: Collector, m: YamlMap, path: string, name: string, alias: string): string {
  if (isUnset(m[alias])) return name;
  if (!isUnset(m[name])) {
    c.issue(keyPath(path, alias), `is an alias of ${name}; set only one of them`);
    return name;
  }
  return alias;
}

function readString(c: Collector, m: YamlMap, path: string, key: string, def: string, nonEmpty = false): string {
  const v = m[key];
  if (isUnset(v)) return def;
  if (typeof v !== 'string') {
    c.issue(keyPath(path, key), `must be a string, got ${describeValue(v)}`);
    return def;
  }
  if (nonEmpty && v === '') {
    c.issue(keyPath(path, key), 'must not be empty');
    return def;
  }
  return v;
}

function readOptionalString(c: Collector, m: YamlMap, path: string, key: string): string | null {
  const v = m[key];
  if (isUnset(v)) return null;
  if (typeof v !== 'string') {
    c.issue(keyPath(path, key), `must be a string, got ${describeValue(v)}`);
    return null;
  }
  return v;
}

/** A file path, resolved against the config's directory. */
function readFilePath(c: Collector, m: YamlMap, path: string, key: string, baseDir: string): string | null {
  const v = readOptionalString(c, m, path, key);
  if (v === '') {
    c.issue(keyPath(path, key), 'must not be empty');
    return null;
  }
  return v === null ? null : resolve(baseDir, v);
}

function readBool(c: Collector, m: YamlMap, path: string, key: string, def: boolean): boolean {
  const v = m[key];
  if (isUnset(v)) return def;
  if (typeof v !== 'boolean') {
    c.issue(keyPath(path, key), `must be true or false, got ${describeValue(v)}`);
    return def;
  }
  return v;
}

function readInt(c: Collector, m: YamlMap, path: string, key: string, def: number, min: number, max?: number): number {
  const v = m[key];
  if (isUnset(v)) return def;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || (max !== undefined && v > max)) {
    const range = max === undefined ? `>= ${min}` : `between ${min} and ${max}`;
    c.issue(keyPath(path, key), `must be an integer ${range}, got ${describeValue(v)}`);
    return def;
  }
  return v;
}

/** Enum values are matched case-insensitively (PgDoorman accepts "Transaction"); `aliases` maps synonyms. */
function readEnum<T extends string>(
  c: Collector,
  m: YamlMap,
  path: string,
  key: string,
  def: T,
  allowed: readonly string[],
  aliases: Readonly<Record<string, T>> = {},
): T {
  const v = m[key];
  if (isUnset(v)) return def;
  const lower = typeof v === 'string' ? v.toLowerCase() : null;
  if (lower === null || !allowed.includes(lower)) {
    c.issue(keyPath(path, key), `must be one of ${allowed.map((a) => `"${a}"`).join(', ')}, got ${describeValue(v)}`);
    return def;
  }
  return aliases[lower] ?? (lower as T);
}

function formatMs(ms: number): string {
  return `${ms} ms`;
}

function readDuration(c: Collector, m: YamlMap, path: string, key: string, def: number, min: number): number {
  const v = m[key];
  if (isUnset(v)) return def;
  const at = keyPath(path, key);
  let ms: number;
  try {
    ms = parseDuration(v, at);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    c.issues.push(...e.issues);
    return def;
  }
  if (ms < min) {
    c.issue(at, `must be at least ${formatMs(min)}, got ${describeValue(v)}`);
    return def;
  }
  if (ms > LIMITS.maxTimerMs) {
    c.issue(at, `must be at most ${formatMs(LIMITS.maxTimerMs)} (about 24.8 days), got ${describeValue(v)}`);
    return def;
  }
  return ms;
}

function readSize(c: Collector, m: YamlMap, path: string, key: string, def: number, min: number, max?: number): number {
  const v = m[key];
  if (isUnset(v)) return def;
  const at = keyPath(path, key);
  let bytes: number;
  try {
    bytes = parseSize(v, at);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    c.issues.push(...e.issues);
    return def;
  }
  if (bytes < min || (max !== undefined && bytes > max)) {
    const range = max === undefined ? `at least ${min} bytes` : `between ${min} and ${max} bytes`;
    c.issue(at, `must be ${range}, got ${describeValue(v)}`);
    return def;
  }
  return bytes;
}

function isVerifying(mode: ServerTlsMode): boolean {
  return mode === 'verify-ca' || mode === 'verify-full';
}

interface Env {
  source: string;
  baseDir: string;
  readFile: (p: string) => string;
}

function parsePgHba(c: Collector, m: YamlMap, env: Env): { pgHba: string | null; pgHbaSource: string | null } {
  const path = 'general.pg_hba';
  const v = m.pg_hba;
  const none = { pgHba: null, pgHbaSource: null };
  if (isUnset(v)) return none;
  if (typeof v === 'string') return { pgHba: v, pgHbaSource: `${env.source} (${path})` };
  if (!isMap(v)) {
    c.issue(path, `must be pg_hba.conf text, { path: <file> } or { content: <text> }, got ${describeValue(v)}`);
    return none;
  }
  checkKeys(c, v, path, ['path', 'content'], []);
  const hasPath = !isUnset(v.path);
  const hasContent = !isUnset(v.content);
  if (hasPath === hasContent) {
    c.issue(path, hasPath ? 'must set either path or content, not both' : 'must set path or content');
    return none;
  }
  if (hasContent) {
    const content = readOptionalString(c, v, path, 'content');
    return content === null ? none : { pgHba: content, pgHbaSource: `${env.source} (${path}.content)` };
  }
  const file = readFilePath(c, v, path, 'path', env.baseDir);
  if (file === null) return none;
  try {
    return { pgHba: env.readFile(file), pgHbaSource: file };
  } catch (e) {
    c.issue(`${path}.path`, `cannot read ${JSON.stringify(file)}: ${e instanceof Error ? e.message : String(e)}`);
    return none;
  }
}

/** PgDoorman's legacy CIDR allow-list: accepted for compatibility, but not enforced. */
function checkLegacyHba(c: Collector, m: YamlMap, hasPgHba: boolean): void {
  const path = 'general.hba';
  const v = m.hba;
  if (isUnset(v)) return;
  if (!Array.isArray(v)) {
    c.issue(path, `must be a list of CIDR addresses, got ${describeValue(v)}`);
    return;
  }
  v.forEach((cidr, i) => {
    if (typeof cidr !== 'string') c.issue(`${path}[${i}]`, `must be a CIDR address string, got ${describeValue(cidr)}`);
  });
  if (v.length === 0) return;
  if (hasPgHba) {
    c.issue(path, 'cannot be set together with general.pg_hba; express the allowed addresses as pg_hba rules');
  } else {
    // Failing closed: silently accepting every address would grant more than the operator configured.
    c.issue(path, 'the legacy CIDR allow-list is not supported: express it as general.pg_hba rules (e.g. "host all all 10.0.0.0/8 scram-sha-256")');
  }
}

function parseGeneral(c: Collector, raw: unknown, env: Env): GeneralConfig {
  const path = 'general';
  const m = section(c, raw, path, 'a map of settings');
  checkKeys(c, m, path, GENERAL_KEYS, GENERAL_IGNORED);
  const d = DEFAULT_GENERAL;
  const at = (key: string): string => keyPath(path, key);

  // Read in GeneralConfig order so issues come out in a predictable order.
  const host = readString(c, m, path, 'host', d.host, true);
  const port = readInt(c, m, path, 'port', d.port, 1, 65535);
  const adminUsername = readString(c, m, path, 'admin_username', d.adminUsername, true);
  const adminPassword = readString(c, m, path, 'admin_password', d.adminPassword);
  const maxClientConn = readInt(c, m, path, aliased(c, m, path, 'max_client_conn', 'max_connections'), d.maxClientConn, 1);
  const workers = readInt(c, m, path, aliased(c, m, path, 'workers', 'worker_threads'), d.workers, 0, LIMITS.maxWorkers);
  const connectTimeout = readDuration(c, m, path, 'connect_timeout', d.connectTimeout, 1);
  const clientLoginTimeout = readDuration(c, m, path, 'client_login_timeout', d.clientLoginTimeout, 0);
  const queryWaitTimeout = readDuration(c, m, path, 'query_wait_timeout', d.queryWaitTimeout, 0);
  const idleKey = aliased(c, m, path, 'server_idle_timeout', 'idle_timeout');
  const serverIdleTimeout = readDuration(c, m, path, idleKey, d.serverIdleTimeout, 0);
  const serverLifetime = readDuration(c, m, path, 'server_lifetime', d.serverLifetime, 1);
  const checkKey = aliased(c, m, path, 'server_idle_check_timeout', 'server_check_delay');
  const serverCheckDelay = readDuration(c, m, path, checkKey, d.serverCheckDelay, 0);
  const shutdownTimeout = readDuration(c, m, path, 'shutdown_timeout', d.shutdownTimeout, 0);
  const reservePoolTimeout = readDuration(c, m, path, 'reserve_pool_timeout', d.reservePoolTimeout, 0);
  const maxMessageSize = readSize(
    c, m, path, 'max_message_size', d.maxMessageSize, LIMITS.minMaxMessageSize, LIMITS.maxMaxMessageSize,
  );
  const maxBufferedBytes = readSize(c, m, path, 'max_buffered_bytes', d.maxBufferedBytes, LIMITS.minMaxBufferedBytes);

  const requested = readEnum<(typeof CLIENT_TLS_MODES)[number] | 'unset'>(c, m, path, 'tls_mode', 'unset', CLIENT_TLS_MODES);
  const tlsCertificate = readFilePath(c, m, path, 'tls_certificate', env.baseDir);
  const tlsPrivateKey = readFilePath(c, m, path, 'tls_private_key', env.baseDir);
  if (tlsPrivateKey !== null && tlsCertificate === null) {
    c.issue(at('tls_certificate'), 'is required when tls_private_key is set');
  }
  if (tlsCertificate !== null && tlsPrivateKey === null) {
    c.issue(at('tls_private_key'), 'is required when tls_certificate is set');
  }
  const haveCert = tlsCertificate !== null && tlsPrivateKey !== null;
  let tlsMode: ClientTlsMode;
  if (requested === 'unset') {
    tlsMode = haveCert ? 'allow' : 'disable';
  } else if (requested === 'require') {
    if (tlsCertificate === null && tlsPrivateKey === null) {
      c.issue(at('tls_mode'), 'is "require" but tls_certificate and tls_private_key are not set');
    }
    tlsMode = 'require';
  } else if (requested === 'disable') {
    tlsMode = 'disable';
  } else if (haveCert) {
    tlsMode = 'allow';
  } else {
    // PgDoorman's reference config says `tls_mode: allow` without a certificate; there it means no TLS.
    c.warn(at('tls_mode'), `is "${requested}" but no tls_certificate/tls_private_key is set; client TLS is disabled`);
    tlsMode = 'disable';
  }

  const serverTlsMode = readEnum<ServerTlsMode>(c, m, path, 'server_tls_mode', d.serverTlsMode, SERVER_TLS_MODES, {
    allow: 'prefer',
  });
  const serverTlsCaCert = readFilePath(c, m, path, 'server_tls_ca_cert', env.baseDir);
  if (isVerifying(serverTlsMode) && serverTlsCaCert === null) {
    c.issue(at('server_tls_ca_cert'), `is required when server_tls_mode is "${serverTlsMode}"`);
  }

  const { pgHba, pgHbaSource } = parsePgHba(c, m, env);
  checkLegacyHba(c, m, pgHba !== null);

  const logLevel = readEnum(c, m, path, 'log_level', d.logLevel, LOG_LEVELS);
  const logFormat = readEnum<LogFormat | 'unset'>(c, m, path, 'log_format', 'unset', LOG_FORMATS);
  return {
    host,
    port,
    adminUsername,
    adminPassword,
    maxClientConn,
    workers,
    connectTimeout,
    clientLoginTimeout,
    queryWaitTimeout,
    serverIdleTimeout,
    serverLifetime,
    serverCheckDelay,
    shutdownTimeout,
    reservePoolTimeout,
    maxMessageSize,
    maxBufferedBytes,
    tlsMode,
    tlsCertificate,
    tlsPrivateKey,
    serverTlsMode,
    serverTlsCaCert,
    pgHba,
    pgHbaSource,
    logLevel,
    logFormat: logFormat === 'unset' ? null : logFormat,
    applicationName: readString(c, m, path, 'application_name', d.applicationName),
    tcpKeepalive: readBool(c, m, path, 'tcp_keepalive', d.tcpKeepalive),
    preparedStatements: readBool(c, m, path, 'prepared_statements', d.preparedStatements),
    preparedStatementsCacheSize: readInt(c, m, path, 'prepared_statements_cache_size', d.preparedStatementsCacheSize, 1),
    maxPreparedStatements: readInt(
      c, m, path, aliased(c, m, path, 'max_prepared_statements', 'server_prepared_statements_cache_size'), d.maxPreparedStatements, 1,
    ),
    tcpNoDelay: readBool(c, m, path, 'tcp_no_delay', d.tcpNoDelay),
  };
}

function checkDatabaseName(c: Collector, path: string, name: string, what: string): void {
  if (name === '') c.issue(path, `${what} must not be empty`);
  else if (name.includes('\0')) c.issue(path, `${what} must not contain a NUL character`);
  else if (Buffer.byteLength(name, 'utf8') > LIMITS.maxDatabaseNameBytes) {
    c.issue(path, `${what} must be at most ${LIMITS.maxDatabaseNameBytes} bytes, got ${Buffer.byteLength(name, 'utf8')}`);
  }
}

/** Flags passwords that look like a verifier but are malformed, which would silently act as plaintext. */
function checkPasswordShape(c: Collector, path: string, password: string): void {
  if (password.startsWith('md5') && password.length !== 3 && !/^md5[0-9a-f]{32}$/.test(password)) {
    c.warn(
      path,
      'starts with "md5" but is not "md5" followed by 32 lowercase hex digits; it is treated as a plaintext password',
    );
  } else if (
    password.startsWith('SCRAM-SHA-256$') &&
    !/^SCRAM-SHA-256\$\d+:[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}:[A-Za-z0-9+/]+={0,2}$/.test(password)
  ) {
    c.warn(path, 'starts with "SCRAM-SHA-256$" but is not a valid SCRAM verifier; it is treated as a plaintext password');
  }
}

interface UserInheritance {
  poolMode: PoolMode;
  serverLifetime: number;
}

function parseUser(c: Collector, path: string, raw: unknown, inherit: UserInheritance): UserConfig | null {
  if (!isMap(raw)) {
    c.issue(path, `must be a map with at least a username, got ${describeValue(raw)}`);
    return null;
  }
  const m = raw;
  checkKeys(c, m, path, USER_KEYS, []);
  const at = (key: string): string => keyPath(path, key);

  let username = '';
  if (isUnset(m.username)) c.issue(at('username'), 'is required');
  else username = readString(c, m, path, 'username', '', true);

  const password = readString(c, m, path, 'password', DEFAULT_USER.password);
  if (password.startsWith(JWT_PASSWORD_PREFIX)) {
    c.issue(at('password'), `JWT authentication ("${JWT_PASSWORD_PREFIX}...") is not supported`);
  } else {
    checkPasswordShape(c, at('password'), password);
  }
  if (!isUnset(m.auth_pam_service)) c.issue(at('auth_pam_service'), 'PAM authentication is not supported');

  const poolSize = readInt(c, m, path, 'pool_size', DEFAULT_USER.poolSize, 1);
  let minPoolSize = readInt(c, m, path, 'min_pool_size', DEFAULT_USER.minPoolSize, 0);
  if (minPoolSize > poolSize) {
    c.issue(at('min_pool_size'), `must not exceed pool_size (${poolSize}), got ${minPoolSize}`);
    minPoolSize = 0;
  }
  return {
    username,
    password,
    poolSize,
    minPoolSize,
    reservePoolSize: readInt(c, m, path, 'reserve_pool_size', DEFAULT_USER.reservePoolSize, 0),
    poolMode: readEnum(c, m, path, 'pool_mode', inherit.poolMode, POOL_MODES),
    serverUsername: readString(c, m, path, 'server_username', username, true),
    serverPassword: readOptionalString(c, m, path, 'server_password'),
    serverLifetime: readDuration(c, m, path, 'server_lifetime', inherit.serverLifetime, 1),
  };
}

/** PgDoorman accepts `users` as a list or (legacy TOML shape) as a map keyed "0", "1", ... */
function userEntries(c: Collector, path: string, v: unknown, hasAuthQuery: boolean): Array<[string, unknown]> {
  const required = hasAuthQuery ? 'list at least one user (auth_query is not supported)' : 'list at least one user';
  if (isUnset(v)) {
    c.issue(path, `is required: ${required}`);
    return [];
  }
  let entries: Array<[string, unknown]>;
  if (Array.isArray(v)) {
    entries = v.map((u, i) => [`${path}[${i}]`, u]);
  } else if (isMap(v)) {
    entries = [];
    const numeric: Array<[number, string]> = [];
    for (const key of Object.keys(v)) {
      if (/^\d+$/.test(key)) {
        numeric.push([Number(key), key]);
      } else {
        c.issue(keyPath(path, key), `must be a numeric index (or write users as a YAML list), got key ${JSON.stringify(key)}`);
      }
    }
    numeric.sort((a, b) => a[0] - b[0]);
    for (const [, key] of numeric) entries.push([keyPath(path, key), v[key]]);
    if (numeric.length < Object.keys(v).length) return entries;
  } else {
    c.issue(path, `must be a list of users, got ${describeValue(v)}`);
    return [];
  }
  if (entries.length === 0) c.issue(path, `must ${required}`);
  return entries;
}

function parsePool(c: Collector, name: string, raw: unknown, general: GeneralConfig): PoolConfig | null {
  const path = keyPath('pools', name);
  checkDatabaseName(c, path, name, 'pool name');
  if (RESERVED_DATABASE_NAMES.includes(name)) c.issue(path, `pool name "${name}" is reserved for the admin console`);
  if (!isMap(raw)) {
    c.issue(path, `must be a map of pool settings, got ${describeValue(raw)}`);
    return null;
  }
  const m = raw;
  checkKeys(c, m, path, POOL_KEYS, POOL_IGNORED);

  const serverHost = readString(c, m, path, 'server_host', DEFAULT_POOL.serverHost, true);
  const serverPort = readInt(c, m, path, 'server_port', DEFAULT_POOL.serverPort, 1, 65535);
  const serverDatabase = readString(c, m, path, 'server_database', name, true);
  if (!isUnset(m.server_database)) checkDatabaseName(c, keyPath(path, 'server_database'), serverDatabase, 'server_database');
  const poolMode = readEnum(c, m, path, 'pool_mode', DEFAULT_POOL.poolMode, POOL_MODES);
  const queryWaitTimeout = readDuration(c, m, path, 'query_wait_timeout', general.queryWaitTimeout, 0);
  const serverTlsMode = readEnum<ServerTlsMode>(c, m, path, 'server_tls_mode', general.serverTlsMode, SERVER_TLS_MODES, {
    allow: 'prefer',
  });
  // An inherited verify-* mode without a CA is already reported under general.
  if (!isUnset(m.server_tls_mode) && isVerifying(serverTlsMode) && general.serverTlsCaCert === null) {
    c.issue(keyPath(path, 'server_tls_mode'), `is "${serverTlsMode}", which requires general.server_tls_ca_cert`);
  }
  const applicationName = readString(c, m, path, 'application_name', general.applicationName);
  const inherit: UserInheritance = {
    poolMode,
    serverLifetime: readDuration(c, m, path, 'server_lifetime', general.serverLifetime, 1),
  };

  const usersPath = keyPath(path, 'users');
  const users: UserConfig[] = [];
  const firstSeen = new Map<string, string>();
  for (const [userPath, rawUser] of userEntries(c, usersPath, m.users, !isEmpty(m.auth_query))) {
    const user = parseUser(c, userPath, rawUser, inherit);
    if (user === null) continue;
    if (user.username !== '') {
      const first = firstSeen.get(user.username);
      if (first !== undefined) {
        c.issue(keyPath(userPath, 'username'), `duplicate username ${JSON.stringify(user.username)} (first at ${first})`);
      } else {
        firstSeen.set(user.username, userPath);
      }
    }
    users.push(user);
  }

  return { name, serverHost, serverPort, serverDatabase, poolMode, queryWaitTimeout, serverTlsMode, applicationName, users };
}

function parsePools(c: Collector, raw: unknown, general: GeneralConfig): Record<string, PoolConfig> {
  // No prototype: a client asking for database "constructor" must not find Object's.
  const pools: Record<string, PoolConfig> = Object.create(null) as Record<string, PoolConfig>;
  const m = section(c, raw, 'pools', 'a map of pool name to pool settings');
  for (const name of Object.keys(m)) {
    const pool = parsePool(c, name, m[name], general);
    if (pool !== null) pools[name] = pool;
  }
  return pools;
}

function lineCol(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const col = offset - before.lastIndexOf('\n');
  return `${line}:${col}`;
}

/** `metrics: { listen: "host:port" }`; an IPv6 host is written in brackets ("[::1]:9127"). */
function parseMetrics(c: Collector, raw: unknown): MetricsConfig {
  const path = 'metrics';
  const m = section(c, raw, path, 'a map with a listen address');
  checkKeys(c, m, path, METRICS_KEYS, []);
  const listen = readString(c, m, path, 'listen', '');
  if (listen === '') return { listen: null };
  const match = /^(?:\[([^\]]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(listen);
  const port = match === null ? -1 : Number(match[3]);
  if (match === null || port > 65535) {
    c.issue(keyPath(path, 'listen'), `must be "host:port" (port 0 to 65535), got ${JSON.stringify(listen)}`);
    return { listen: null };
  }
  return { listen: { host: match[1] ?? match[2], port } };
}

/**
 * Parses and fully validates a Doorman (or PgDoorman-shaped) YAML config, filling in every default.
 * Throws ConfigError listing all issues; `source` names the text in messages (usually its file path).
 */
export function parseConfig(text: string, source: string, opts: ParseOptions = {}): DoormanConfig {
  const doc = parseDocument(text, { prettyErrors: false, merge: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => ({ path: '(yaml)', message: `${lineCol(text, e.pos[0])}: ${e.message}` })));
  }
  const c = new Collector(opts.onWarning);
  for (const w of doc.warnings) c.warn('(yaml)', `${lineCol(text, w.pos[0])}: ${w.message}`);
  let root: unknown;
  try {
    root = doc.toJS({ maxAliasCount: 1000 });
  } catch (e) {
    throw new ConfigError([{ path: '(yaml)', message: e instanceof Error ? e.message : String(e) }]);
  }

  const env: Env = {
    source,
    baseDir: opts.baseDir ?? process.cwd(),
    readFile: opts.readFile ?? ((p: string) => readFileSync(p, 'utf8')),
  };
  const top = section(c, root, '(root)', 'a map with general and pools sections');
  checkKeys(c, top, '', TOP_KEYS, TOP_IGNORED);
  const general = parseGeneral(c, top.general, env);
  const metrics = parseMetrics(c, top.metrics);
  const pools = parsePools(c, top.pools, general);
  if (c.issues.length > 0) throw new ConfigError(c.issues);
  return { general, metrics, pools };
}

/** Reads and parses a config file; relative paths inside it resolve against its directory. */
export function loadConfigFile(path: string, onWarning?: WarningHandler): DoormanConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new ConfigError([{ path: '(file)', message: `cannot read ${JSON.stringify(path)}: ${reason}` }]);
  }
  return parseConfig(text, path, { baseDir: dirname(resolve(path)), onWarning });
}
