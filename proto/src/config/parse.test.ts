import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_GENERAL } from './defaults.js';
import { ConfigError } from './errors.js';
import { loadConfigFile, parseConfig, type ParseOptions } from './parse.js';
import type { DoormanConfig, GeneralConfig } from './types.js';

const BASE = '/etc/doorman';

type Warning = [path: string, message: string];

function parse(text: string, opts: ParseOptions = {}): { config: DoormanConfig; warnings: Warning[] } {
  const warnings: Warning[] = [];
  const config = parseConfig(text, 'test.yaml', { baseDir: BASE, onWarning: (p, m) => warnings.push([p, m]), ...opts });
  return { config, warnings };
}

function issuesOf(text: string, opts: ParseOptions = {}): Array<[string, string]> {
  try {
    parseConfig(text, 'test.yaml', { baseDir: BASE, ...opts });
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    assert.equal(e.message, e.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
    return e.issues.map((i) => [i.path, i.message]);
  }
  assert.fail('config was accepted');
}

function general(overrides: Partial<GeneralConfig>): GeneralConfig {
  return { ...DEFAULT_GENERAL, ...overrides };
}

const IGNORED = 'is a PgDoorman setting that Doorman does not implement; ignored';

test('the PgDoorman README minimal config loads with the expected effective values', () => {
  const text = `
general:
  host: "0.0.0.0"
  port: 6432
  admin_username: "admin"
  admin_password: "change_me"

pools:
  mydb:
    server_host: "127.0.0.1"
    server_port: 5432
    pool_mode: "transaction"
    users:
      - username: "app"
        password: "md5..."           # hash for client auth (from pg_shadow)
        pool_size: 40
        server_username: "app"       # real PostgreSQL username
        server_password: "secret"    # real PostgreSQL password (plaintext)
`;
  const { config, warnings } = parse(text);
  assert.deepEqual(config.general, general({ host: '0.0.0.0', adminPassword: 'change_me' }));
  assert.deepEqual({ ...config.pools }, {
    mydb: {
      name: 'mydb',
      serverHost: '127.0.0.1',
      serverPort: 5432,
      serverDatabase: 'mydb',
      poolMode: 'transaction',
      queryWaitTimeout: 5000,
      serverTlsMode: 'prefer',
      applicationName: 'doorman',
      users: [
        {
          username: 'app',
          password: 'md5...',
          poolSize: 40,
          minPoolSize: 0,
          reservePoolSize: 0,
          poolMode: 'transaction',
          serverUsername: 'app',
          serverPassword: 'secret',
          serverLifetime: 3_600_000,
        },
      ],
    },
  });
  assert.deepEqual(warnings, [
    [
      'pools.mydb.users[0].password',
      'starts with "md5" but is not "md5" followed by 32 lowercase hex digits; it is treated as a plaintext password',
    ],
  ]);
});

test('a PgDoorman-shaped config with many settings loads; unimplemented ones become warnings', () => {
  const text = `
include:
general:
  host: "0.0.0.0"
  port: 6432
  backlog: 0
  connect_timeout: "3s"
  query_wait_timeout: 4000
  idle_timeout: "10m"
  server_lifetime: "20m"
  retain_connections_time: "30s"
  server_idle_check_timeout: "60s"
  shutdown_timeout: "10s"
  tcp_keepalives_idle: 5
  tcp_no_delay: false
  max_connections: 1000
  worker_threads: 4
  max_memory_usage: "256MB"
  prepared_statements: true
  prepared_statements_cache_size: 8192
  admin_username: "admin"
  admin_password: "admin"
  tls_mode: "allow"
  server_tls_mode: "allow"
  hba: []
  startup_parameters: {}
web:
  enabled: false
  port: 9127
pools:
  exampledb:
    server_host: "/var/run/postgresql"
    server_port: 5433
    server_database: "real_db"
    pool_mode: "Session"
    cleanup_server_connections: true
    application_name: "billing"
    server_lifetime: 300000
    users:
      - username: "app_user"
        password: "md5dd9a0f26a4302744db881776a09bbfad"
        pool_size: 10
        min_pool_size: 2
      - username: "batch"
        password: "plain"
        pool_size: 5
        pool_mode: "transaction"
        server_lifetime: "2m"
        server_username: "batch_pg"
`;
  const { config, warnings } = parse(text);
  assert.deepEqual(
    config.general,
    general({
      host: '0.0.0.0',
      queryWaitTimeout: 4000,
      serverIdleTimeout: 600_000,
      serverLifetime: 1_200_000,
      serverCheckDelay: 60_000,
      tcpNoDelay: false,
      maxClientConn: 1000,
      workers: 4,
      adminPassword: 'admin',
      tlsMode: 'disable',
      serverTlsMode: 'prefer',
    }),
  );
  const pool = config.pools.exampledb;
  assert.deepEqual(
    { ...pool, users: [] },
    {
      name: 'exampledb',
      serverHost: '/var/run/postgresql',
      serverPort: 5433,
      serverDatabase: 'real_db',
      poolMode: 'session',
      queryWaitTimeout: 4000,
      serverTlsMode: 'prefer',
      applicationName: 'billing',
      users: [],
    },
  );
  assert.deepEqual(pool.users, [
    {
      username: 'app_user',
      password: 'md5dd9a0f26a4302744db881776a09bbfad',
      poolSize: 10,
      minPoolSize: 2,
      reservePoolSize: 0,
      poolMode: 'session',
      serverUsername: 'app_user',
      serverPassword: null,
      serverLifetime: 300_000,
    },
    {
      username: 'batch',
      password: 'plain',
      poolSize: 5,
      minPoolSize: 0,
      reservePoolSize: 0,
      poolMode: 'transaction',
      serverUsername: 'batch_pg',
      serverPassword: null,
      serverLifetime: 120_000,
    },
  ]);
  assert.deepEqual(warnings, [
    ['web', IGNORED],
    ['general.backlog', IGNORED],
    ['general.retain_connections_time', IGNORED],
    ['general.tcp_keepalives_idle', IGNORED],
    ['general.max_memory_usage', IGNORED],
    ['general.tls_mode', 'is "allow" but no tls_certificate/tls_private_key is set; client TLS is disabled'],
    ['pools.exampledb.cleanup_server_connections', IGNORED],
  ]);
});

test('an empty document is all defaults and no pools', () => {
  const { config, warnings } = parse('# nothing yet\n');
  assert.deepEqual(config.general, DEFAULT_GENERAL);
  assert.deepEqual(Object.keys(config.pools), []);
  assert.deepEqual(warnings, []);
});

test('the shipped example config loads', () => {
  const file = fileURLToPath(new URL('../../../deploy/examples/doorman.yaml', import.meta.url));
  const warnings: Warning[] = [];
  const config = loadConfigFile(file, (p, m) => warnings.push([p, m]));
  assert.deepEqual(warnings, []);
  assert.equal(config.general.host, '127.0.0.1');
  assert.equal(config.general.port, 6432);
  assert.equal(config.general.tlsMode, 'disable');
  assert.equal(config.general.pgHbaSource, `${file} (general.pg_hba)`);
  assert.match(config.general.pgHba ?? '', /^host +all +all +127\.0\.0\.1\/32 +scram-sha-256$/m);
  assert.deepEqual(Object.keys(config.pools), ['app']);
  const app = config.pools.app;
  assert.equal(app.poolMode, 'transaction');
  assert.equal(app.serverHost, '127.0.0.1');
  assert.equal(app.serverPort, 5432);
  assert.equal(app.serverDatabase, 'app');
  assert.deepEqual(app.users.map((u) => [u.username, u.password, u.poolSize, u.reservePoolSize]), [
    ['app', 'app-secret', 20, 5],
  ]);
});

test('a broken config reports every issue at once, each at its exact path', () => {
  const text = `
genral: {}
general:
  prot: 6432
  port: 70000
  max_client_conn: 0
  max_connections: 10
  connect_timeout: "0s"
  query_wait_timeout: "soon"
  server_lifetime: "30d"
  max_buffered_bytes: "1KB"
  max_message_size: "2GB"
  tls_mode: "require"
  server_tls_mode: "verify-full"
  log_level: "loud"
  log_format: "xml"
  tcp_keepalive: "yes"
  admin_username: ""
pools:
  doorman:
    users: [{ username: admin }]
  shop:
    server_port: "5432"
    pool_mode: "statement"
    auth_query: { query: "select 1" }
  good:
    server_tls_mode: "verify-ca"
    users:
      - username: "a"
        pool_size: "abc"
        min_pool_size: 50
      - username: "a"
        password: "jwt-pkey-fpath:/k.pem"
        pool_szie: 3
      - password: "x"
        auth_pam_service: "login"
        server_lifetime: -1
      - "bob"
  legacy:
    users:
      "0": { username: "u0" }
      first: { username: "u1" }
`;
  assert.deepEqual(issuesOf(text), [
    ['genral', 'unknown field (did you mean "general"?)'],
    ['general.prot', 'unknown field (did you mean "port"?)'],
    ['general.port', 'must be an integer between 1 and 65535, got 70000'],
    ['general.admin_username', 'must not be empty'],
    ['general.max_connections', 'is an alias of max_client_conn; set only one of them'],
    ['general.max_client_conn', 'must be an integer >= 1, got 0'],
    ['general.connect_timeout', 'must be at least 1 ms, got "0s"'],
    [
      'general.query_wait_timeout',
      'must be a duration such as "250ms", "30s", "5m", "1m30s" or a whole number of milliseconds, got "soon"',
    ],
    ['general.server_lifetime', 'must be at most 2147483647 ms (about 24.8 days), got "30d"'],
    ['general.max_message_size', 'must be between 16384 and 1073741824 bytes, got "2GB"'],
    ['general.max_buffered_bytes', 'must be at least 65536 bytes, got "1KB"'],
    ['general.tls_mode', 'is "require" but tls_certificate and tls_private_key are not set'],
    ['general.server_tls_ca_cert', 'is required when server_tls_mode is "verify-full"'],
    ['general.log_level', 'must be one of "trace", "debug", "info", "warn", "error", "fatal", got "loud"'],
    ['general.log_format', 'must be one of "json", "pretty", got "xml"'],
    ['general.tcp_keepalive', 'must be true or false, got "yes"'],
    ['pools.doorman', 'pool name "doorman" is reserved for the admin console'],
    ['pools.shop.server_port', 'must be an integer between 1 and 65535, got "5432"'],
    ['pools.shop.pool_mode', 'must be one of "transaction", "session", got "statement"'],
    ['pools.shop.users', 'is required: list at least one user (auth_query is not supported)'],
    ['pools.good.server_tls_mode', 'is "verify-ca", which requires general.server_tls_ca_cert'],
    ['pools.good.users[0].pool_size', 'must be an integer >= 1, got "abc"'],
    ['pools.good.users[0].min_pool_size', 'must not exceed pool_size (40), got 50'],
    ['pools.good.users[1].pool_szie', 'unknown field (did you mean "pool_size"?)'],
    ['pools.good.users[1].password', 'JWT authentication ("jwt-pkey-fpath:...") is not supported'],
    ['pools.good.users[1].username', 'duplicate username "a" (first at pools.good.users[0])'],
    ['pools.good.users[2].username', 'is required'],
    ['pools.good.users[2].auth_pam_service', 'PAM authentication is not supported'],
    ['pools.good.users[2].server_lifetime', 'must not be negative, got -1'],
    ['pools.good.users[3]', 'must be a map with at least a username, got "bob"'],
    ['pools.legacy.users.first', 'must be a numeric index (or write users as a YAML list), got key "first"'],
  ]);
});

test('unknown keys get a suggestion only when one is close', () => {
  const text = 'general:\n  Port: 1\n  completely_unrelated: 1\npools:\n  db:\n    usres: []\n    users: [{username: u}]\n';
  assert.deepEqual(issuesOf(text), [
    ['general.Port', 'unknown field (did you mean "port"?)'],
    ['general.completely_unrelated', 'unknown field'],
    ['pools.db.usres', 'unknown field (did you mean "users"?)'],
  ]);
});

test('YAML syntax errors carry line:col and stop validation', () => {
  assert.deepEqual(issuesOf('general:\n  port: 1\n  port: 2\n'), [['(yaml)', '3:3: Map keys must be unique']]);
  const [[path, message]] = issuesOf('pools: [1,\n');
  assert.equal(path, '(yaml)');
  assert.match(message, /^2:1: /);
});

test('top-level sections of the wrong shape', () => {
  assert.deepEqual(issuesOf('- a\n- b\n'), [['(root)', 'must be a map with general and pools sections, got a list']]);
  assert.deepEqual(issuesOf('general: 5\npools: [a]\n'), [
    ['general', 'must be a map of settings, got 5'],
    ['pools', 'must be a map of pool name to pool settings, got a list'],
  ]);
});

test('pg_hba as a path is read through opts.readFile relative to baseDir', () => {
  const read: string[] = [];
  const readFile = (p: string): string => {
    read.push(p);
    return 'host all all 10.0.0.0/8 md5\n';
  };
  const { config } = parse('general:\n  pg_hba:\n    path: "hba/pg_hba.conf"\n', { readFile });
  assert.deepEqual(read, ['/etc/doorman/hba/pg_hba.conf']);
  assert.equal(config.general.pgHba, 'host all all 10.0.0.0/8 md5\n');
  assert.equal(config.general.pgHbaSource, '/etc/doorman/hba/pg_hba.conf');

  const abs = parse('general:\n  pg_hba: { path: "/srv/hba.conf" }\n', { readFile });
  assert.equal(abs.config.general.pgHbaSource, '/srv/hba.conf');
});

test('pg_hba inline text and {content}', () => {
  const inline = parse('general:\n  pg_hba: |\n    local all all trust\n').config.general;
  assert.equal(inline.pgHba, 'local all all trust\n');
  assert.equal(inline.pgHbaSource, 'test.yaml (general.pg_hba)');
  const content = parse('general:\n  pg_hba:\n    content: "host all all ::1/128 trust"\n').config.general;
  assert.equal(content.pgHba, 'host all all ::1/128 trust');
  assert.equal(content.pgHbaSource, 'test.yaml (general.pg_hba.content)');
});

test('pg_hba problems', () => {
  const failing = (): string => {
    throw new Error('ENOENT: no such file');
  };
  assert.deepEqual(issuesOf('general:\n  pg_hba: { path: "missing.conf" }\n', { readFile: failing }), [
    ['general.pg_hba.path', 'cannot read "/etc/doorman/missing.conf": ENOENT: no such file'],
  ]);
  assert.deepEqual(issuesOf('general:\n  pg_hba: { path: "a", content: "b" }\n'), [
    ['general.pg_hba', 'must set either path or content, not both'],
  ]);
  assert.deepEqual(issuesOf('general:\n  pg_hba: { pth: "a" }\n'), [
    ['general.pg_hba.pth', 'unknown field (did you mean "path"?)'],
    ['general.pg_hba', 'must set path or content'],
  ]);
  assert.deepEqual(issuesOf('general:\n  pg_hba: [1]\n'), [
    ['general.pg_hba', 'must be pg_hba.conf text, { path: <file> } or { content: <text> }, got a list'],
  ]);
  assert.deepEqual(issuesOf('general:\n  pg_hba: "local all all trust"\n  hba: ["10.0.0.0/8"]\n'), [
    ['general.hba', 'cannot be set together with general.pg_hba; express the allowed addresses as pg_hba rules'],
  ]);
});

test('the legacy hba CIDR list is refused rather than silently not enforced', () => {
  assert.deepEqual(issuesOf('general:\n  hba: ["10.0.0.0/8", "127.0.0.1/32"]\n'), [
    ['general.hba', 'the legacy CIDR allow-list is not supported: express it as general.pg_hba rules (e.g. "host all all 10.0.0.0/8 scram-sha-256")'],
  ]);
  assert.deepEqual(issuesOf('general:\n  hba: "10.0.0.0/8"\n'), [
    ['general.hba', 'must be a list of CIDR addresses, got "10.0.0.0/8"'],
  ]);
});

test('client TLS: a certificate turns on allow; paths resolve against baseDir', () => {
  const g = parse('general:\n  tls_certificate: "tls/server.crt"\n  tls_private_key: "/keys/server.key"\n').config.general;
  assert.equal(g.tlsMode, 'allow');
  assert.equal(g.tlsCertificate, '/etc/doorman/tls/server.crt');
  assert.equal(g.tlsPrivateKey, '/keys/server.key');
  const prefer = parse('general:\n  tls_mode: prefer\n  tls_certificate: a\n  tls_private_key: b\n').config.general;
  assert.equal(prefer.tlsMode, 'allow');
  const require = parse('general:\n  tls_mode: REQUIRE\n  tls_certificate: a\n  tls_private_key: b\n').config.general;
  assert.equal(require.tlsMode, 'require');
  const disabled = parse('general:\n  tls_mode: disable\n  tls_certificate: a\n  tls_private_key: b\n').config.general;
  assert.equal(disabled.tlsMode, 'disable');
  assert.deepEqual(issuesOf('general:\n  tls_certificate: a\n'), [
    ['general.tls_private_key', 'is required when tls_certificate is set'],
  ]);
  assert.deepEqual(issuesOf('general:\n  tls_private_key: b\n  tls_mode: require\n'), [
    ['general.tls_certificate', 'is required when tls_private_key is set'],
  ]);
  assert.deepEqual(issuesOf('general:\n  tls_mode: verify-full\n'), [
    ['general.tls_mode', 'must be one of "disable", "allow", "prefer", "require", got "verify-full"'],
  ]);
});

test('server TLS: allow reads as prefer; verify modes need a CA; pools inherit', () => {
  const { config } = parse(`
general:
  server_tls_mode: verify-full
  server_tls_ca_cert: ca/root.crt
pools:
  a: { users: [{ username: u }] }
  b: { server_tls_mode: allow, users: [{ username: u }] }
  c: { server_tls_mode: disable, users: [{ username: u }] }
`);
  assert.equal(config.general.serverTlsCaCert, '/etc/doorman/ca/root.crt');
  assert.deepEqual(
    Object.values(config.pools).map((p) => [p.name, p.serverTlsMode]),
    [['a', 'verify-full'], ['b', 'prefer'], ['c', 'disable']],
  );
  assert.deepEqual(issuesOf('general:\n  server_tls_mode: sometimes\n'), [
    [
      'general.server_tls_mode',
      'must be one of "disable", "allow", "prefer", "require", "verify-ca", "verify-full", got "sometimes"',
    ],
  ]);
});

test('Doorman names and PgDoorman aliases are both accepted', () => {
  const doorman = parse('general:\n  max_client_conn: 10\n  workers: 2\n  server_idle_timeout: 1s\n  server_check_delay: 2s\n');
  const pgdoorman = parse(
    'general:\n  max_connections: 10\n  worker_threads: 2\n  idle_timeout: 1000\n  server_idle_check_timeout: 2000\n',
  );
  for (const { config } of [doorman, pgdoorman]) {
    assert.equal(config.general.maxClientConn, 10);
    assert.equal(config.general.workers, 2);
    assert.equal(config.general.serverIdleTimeout, 1000);
    assert.equal(config.general.serverCheckDelay, 2000);
  }
  assert.deepEqual(issuesOf('general:\n  workers: 1\n  worker_threads: 2\n  idle_timeout: 1\n  server_idle_timeout: 1\n'), [
    ['general.worker_threads', 'is an alias of workers; set only one of them'],
    ['general.idle_timeout', 'is an alias of server_idle_timeout; set only one of them'],
  ]);
});

test('zero is allowed where it means "no limit" or "immediately"', () => {
  const g = parse('general:\n  query_wait_timeout: 0\n  shutdown_timeout: 0\n  server_idle_check_timeout: 0\n  client_login_timeout: 0\n').config.general;
  assert.equal(g.clientLoginTimeout, 0);
  assert.equal(g.queryWaitTimeout, 0);
  assert.equal(g.shutdownTimeout, 0);
  assert.equal(g.serverCheckDelay, 0);
});

test('users written as a map with numeric keys, in numeric order', () => {
  const { config } = parse('pools:\n  db:\n    users:\n      "10": { username: ten }\n      2: { username: two }\n');
  assert.deepEqual(config.pools.db.users.map((u) => u.username), ['two', 'ten']);
  assert.deepEqual(issuesOf('pools:\n  db:\n    users: {}\n'), [['pools.db.users', 'must list at least one user']]);
  assert.deepEqual(issuesOf('pools:\n  db:\n    users: []\n'), [['pools.db.users', 'must list at least one user']]);
  assert.deepEqual(issuesOf('pools:\n  db:\n    users: "app"\n'), [['pools.db.users', 'must be a list of users, got "app"']]);
});

test('pool and user inheritance', () => {
  const { config } = parse(`
general:
  query_wait_timeout: 7s
  server_lifetime: 30m
  application_name: gateway
pools:
  a:
    pool_mode: session
    users: [{ username: u1 }, { username: u2, pool_mode: transaction, server_lifetime: 1m }]
  b:
    query_wait_timeout: 0
    server_lifetime: 10m
    users: [{ username: u3, reserve_pool_size: 3 }]
`);
  const a = config.pools.a;
  assert.deepEqual([a.queryWaitTimeout, a.applicationName, a.serverDatabase], [7000, 'gateway', 'a']);
  assert.deepEqual(
    a.users.map((u) => [u.poolMode, u.serverLifetime]),
    [['session', 1_800_000], ['transaction', 60_000]],
  );
  const b = config.pools.b;
  assert.equal(b.queryWaitTimeout, 0);
  assert.deepEqual(b.users.map((u) => [u.poolMode, u.serverLifetime, u.reservePoolSize]), [['transaction', 600_000, 3]]);
});

test('pool names: reserved, too long, odd characters quoted in paths', () => {
  const long = 'x'.repeat(64);
  const text = `pools:
  pgbouncer: { users: [{ username: u }] }
  ${long}: { users: [{ username: u }] }
  "a.b": { users: [{ usernam: u }] }
`;
  assert.deepEqual(issuesOf(text), [
    ['pools.pgbouncer', 'pool name "pgbouncer" is reserved for the admin console'],
    [`pools.${long}`, 'pool name must be at most 63 bytes, got 64'],
    ['pools["a.b"].users[0].usernam', 'unknown field (did you mean "username"?)'],
    ['pools["a.b"].users[0].username', 'is required'],
  ]);
  const ok = parse(`pools:\n  ${'y'.repeat(63)}: { users: [{ username: u }] }\n`);
  assert.deepEqual(Object.keys(ok.config.pools), ['y'.repeat(63)]);
});

test('the pools record has no prototype, so "constructor" is not a pool', () => {
  const { config } = parse('pools:\n  db: { users: [{ username: u }] }\n');
  assert.equal(config.pools.constructor, undefined);
  assert.equal(Object.getPrototypeOf(config.pools), null);
});

test('malformed md5 and SCRAM secrets warn; valid ones do not', () => {
  const scram =
    'SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$H6N1Eq0tS3Pyv2ZcFfh0e0pp2CZ/iYrvKqR3sXqhHGs=:Jc9n3XCd3jvvbU6bGJGyaXhAbVc+Hak9PxbfcCKo5xU=';
  const good = parse(`pools:
  db:
    users:
      - { username: a, password: "md5${'0'.repeat(32)}" }
      - { username: b, password: "${scram}" }
`);
  assert.deepEqual(good.warnings, []);
  const bad = parse('pools:\n  db:\n    users:\n      - { username: a, password: "SCRAM-SHA-256$oops" }\n');
  assert.deepEqual(bad.warnings, [
    [
      'pools.db.users[0].password',
      'starts with "SCRAM-SHA-256$" but is not a valid SCRAM verifier; it is treated as a plaintext password',
    ],
  ]);
});

test('loadConfigFile resolves relative paths against the file directory and reports unreadable files', () => {
  const file = fileURLToPath(new URL('../../../deploy/examples/doorman.yaml', import.meta.url));
  assert.equal(loadConfigFile(file).pools.app.name, 'app');
  const missing = resolve('/nonexistent-doorman-dir/doorman.yaml');
  assert.throws(
    () => loadConfigFile(missing),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.issues.length === 1 &&
      e.issues[0].path === '(file)' &&
      e.issues[0].message.startsWith(`cannot read "${missing}": ENOENT`),
  );
});

test('metrics.listen: host:port (IPv6 in brackets), absent means no listener', () => {
  assert.deepEqual(parse('pools: {}\n').config.metrics, { listen: null });
  assert.deepEqual(parse('metrics:\n  listen: "127.0.0.1:9127"\n').config.metrics, { listen: { host: '127.0.0.1', port: 9127 } });
  assert.deepEqual(parse('metrics: { listen: "[::1]:0" }\n').config.metrics, { listen: { host: '::1', port: 0 } });
  assert.deepEqual(issuesOf('metrics: { listen: "9127" }\n'), [['metrics.listen', 'must be "host:port" (port 0 to 65535), got "9127"']]);
  assert.deepEqual(issuesOf('metrics: { listen: "h:70000" }\n'), [['metrics.listen', 'must be "host:port" (port 0 to 65535), got "h:70000"']]);
  assert.deepEqual(issuesOf('metrics: { port: 1 }\n'), [['metrics.port', 'unknown field']]);
});
