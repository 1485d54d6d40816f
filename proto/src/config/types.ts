/**
 * The effective pool configuration: what the YAML file (or, later, the control plane) says, with every
 * default filled in. YAML keys are snake_case (PgDoorman's shape); these fields are their camelCase twins.
 * Durations are milliseconds, sizes are bytes.
 */

export type PoolMode = 'session' | 'transaction';
/** TLS towards clients. `prefer` is accepted as a synonym of `allow`. */
export type ClientTlsMode = 'disable' | 'allow' | 'require';
/** TLS towards PostgreSQL, with libpq's sslmode meanings. */
export type ServerTlsMode = 'disable' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
export type LogFormat = 'json' | 'pretty';

export interface GeneralConfig {
  host: string;
  port: number;
  /** Admin console credentials (virtual databases `doorman` and `pgbouncer`). */
  adminUsername: string;
  adminPassword: string;
  /** Refuse clients beyond this many with 53300 "sorry, too many clients already". YAML: max_client_conn (alias max_connections). */
  maxClientConn: number;
  /** Worker shards; 0 means one per core. YAML: workers (alias worker_threads). */
  workers: number;
  /** Bound on one TCP connect + login to PostgreSQL. */
  connectTimeout: number;
  /** A client that has not logged in this long after connecting is disconnected, silently as PostgreSQL does. 0 = no limit. */
  clientLoginTimeout: number;
  /** How long a client may wait for a server connection before 53300. 0 = no limit. */
  queryWaitTimeout: number;
  /** Close server connections idle longer than this. YAML: server_idle_timeout (alias idle_timeout). */
  serverIdleTimeout: number;
  /** Close server connections older than this at their next check-in. */
  serverLifetime: number;
  /** Before reusing a server connection idle longer than this, check it with an empty query. YAML: server_idle_check_timeout (alias server_check_delay). */
  serverCheckDelay: number;
  /** Grace for transactions on SIGTERM and for binary upgrade drains. */
  shutdownTimeout: number;
  /** A waiting client may use the reserve pool after waiting this long. */
  reservePoolTimeout: number;
  /** Largest accepted protocol message. */
  maxMessageSize: number;
  /** Per-connection cap on bytes queued towards a peer that does not read, before reading pauses. */
  maxBufferedBytes: number;
  tlsMode: ClientTlsMode;
  tlsCertificate: string | null;
  tlsPrivateKey: string | null;
  serverTlsMode: ServerTlsMode;
  serverTlsCaCert: string | null;
  /** pg_hba.conf-format rules (the file's text, already read when given as a path); null = no hba. */
  pgHba: string | null;
  /** Where pgHba came from, for error messages. */
  pgHbaSource: string | null;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  logFormat: LogFormat | null;
  /** Send the pooler's own ParameterStatus for application_name etc. when a client did not set one. */
  applicationName: string;
  tcpKeepalive: boolean;
  /** Transaction mode: map every client Parse to a pool-wide server-side statement (drop-in prepared statements). */
  preparedStatements: boolean;
  /** Distinct statements a pool remembers (query text and parameter types). */
  preparedStatementsCacheSize: number;
  /** Statements one server connection keeps prepared; the least recently used is closed beyond this. YAML: max_prepared_statements (alias server_prepared_statements_cache_size). */
  maxPreparedStatements: number;
  tcpNoDelay: boolean;
}

export interface UserConfig {
  username: string;
  /** Client-auth secret: plaintext, "md5<32 hex>" or a SCRAM-SHA-256 verifier. Empty = none. */
  password: string;
  poolSize: number;
  minPoolSize: number;
  reservePoolSize: number;
  poolMode: PoolMode;
  /** Login used towards PostgreSQL (defaults to username). */
  serverUsername: string;
  /** Plaintext password towards PostgreSQL; null = reuse `password` when it is plaintext. */
  serverPassword: string | null;
  serverLifetime: number;
}

export interface PoolConfig {
  /** The database name clients ask for (the key under `pools:`). */
  name: string;
  serverHost: string;
  serverPort: number;
  /** The database on PostgreSQL (defaults to name). */
  serverDatabase: string;
  poolMode: PoolMode;
  queryWaitTimeout: number;
  serverTlsMode: ServerTlsMode;
  /** application_name for this pool's clients that set none (defaults to general's). */
  applicationName: string;
  users: UserConfig[];
}

/** The Prometheus / health HTTP listener. YAML: top-level `metrics: { listen: "127.0.0.1:9127" }`. */
export interface MetricsConfig {
  /** Where /metrics, /healthz and /readyz are served; null = no listener. */
  listen: { host: string; port: number } | null;
}

export interface DoormanConfig {
  general: GeneralConfig;
  metrics: MetricsConfig;
  /** Keyed by the database name clients ask for. */
  pools: Record<string, PoolConfig>;
}

export interface ConfigIssue {
  /** Dotted path of the offending field, e.g. `pools.mydb.users[0].pool_size`. */
  path: string;
  message: string;
}
