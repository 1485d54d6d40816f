import type { GeneralConfig, PoolMode } from './types.js';

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const KIB = 1024;
const MIB = 1024 * KIB;

/**
 * `general:` defaults, PgBouncer/PgDoorman-like. `tlsMode` here is the value without a certificate;
 * the parser switches it to `allow` when tls_certificate is configured.
 */
export const DEFAULT_GENERAL: Readonly<GeneralConfig> = Object.freeze({
  host: '127.0.0.1',
  port: 6432,
  adminUsername: 'admin',
  adminPassword: '',
  maxClientConn: 8192,
  workers: 0,
  connectTimeout: 3 * SECOND,
  clientLoginTimeout: 60 * SECOND,
  queryWaitTimeout: 5 * SECOND,
  serverIdleTimeout: 10 * MINUTE,
  serverLifetime: 60 * MINUTE,
  serverCheckDelay: 30 * SECOND,
  shutdownTimeout: 10 * SECOND,
  reservePoolTimeout: 3 * SECOND,
  maxMessageSize: 256 * MIB,
  maxBufferedBytes: 1 * MIB,
  tlsMode: 'disable',
  tlsCertificate: null,
  tlsPrivateKey: null,
  serverTlsMode: 'prefer',
  serverTlsCaCert: null,
  pgHba: null,
  pgHbaSource: null,
  logLevel: 'info',
  logFormat: null,
  applicationName: 'doorman',
  tcpKeepalive: true,
  preparedStatements: true,
  preparedStatementsCacheSize: 8192,
  maxPreparedStatements: 500,
  tcpNoDelay: true,
});

/** `pools.<name>:` defaults; the rest inherit from `general:` or from the pool name. */
export const DEFAULT_POOL: Readonly<{ serverHost: string; serverPort: number; poolMode: PoolMode }> = Object.freeze({
  serverHost: '127.0.0.1',
  serverPort: 5432,
  poolMode: 'transaction',
});

/** `users[i]` defaults; the rest inherit from the pool or the username. */
export const DEFAULT_USER: Readonly<{ password: string; poolSize: number; minPoolSize: number; reservePoolSize: number }> =
  Object.freeze({
    password: '',
    poolSize: 40,
    minPoolSize: 0,
    reservePoolSize: 0,
  });

/** Bounds the validator enforces. */
export const LIMITS = Object.freeze({
  /** Below this, ordinary result rows would stall the relay. */
  minMaxBufferedBytes: 64 * KIB,
  /** PostgreSQL's own StartupMessage limit is 10000 bytes; anything smaller breaks logins. */
  minMaxMessageSize: 16 * KIB,
  /** PostgreSQL never sends a message of 1 GiB or more. */
  maxMaxMessageSize: 1024 * MIB,
  /** Node timers overflow beyond 2^31-1 ms (about 24.8 days) and fire at once. */
  maxTimerMs: 2 ** 31 - 1,
  maxWorkers: 1024,
  /** NAMEDATALEN - 1: longer database names are truncated by PostgreSQL. */
  maxDatabaseNameBytes: 63,
});

/** Database names that reach the admin console rather than a pool. */
export const RESERVED_DATABASE_NAMES: readonly string[] = Object.freeze(['doorman', 'pgbouncer']);
