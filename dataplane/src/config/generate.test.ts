import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, type DoormanConfig } from '@doorman/proto';
import { parse } from 'yaml';
import { generateConfig, yamlString, type Catalog, type GenerateOptions } from './generate.js';
import { validateLoaded } from './load.js';

const SCRAM =
  'SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyMTI=:YmF6cXV4YmF6cXV4YmF6cXV4YmF6cXV4YmF6cXV4MTI=';
const MD5 = 'md5' + '0123456789abcdef'.repeat(2);

const OPTS: GenerateOptions = {
  serverHost: 'db.example',
  serverPort: 5433,
  connectedUser: 'postgres',
  listenPort: 6432,
  poolMode: 'transaction',
  poolSize: 15,
};

function load(text: string): DoormanConfig {
  const warnings: string[] = [];
  const config = parseConfig(text, 'generated.yaml', { onWarning: (p, m) => warnings.push(`${p}: ${m}`) });
  assert.deepEqual(warnings, []);
  return validateLoaded(config).config;
}

const CATALOG: Catalog = {
  databases: ['app', 'postgres'],
  roles: [
    { name: 'md5_user', verifier: MD5, superuser: false },
    { name: 'nopass', verifier: null, superuser: false },
    { name: 'postgres', verifier: SCRAM, superuser: true },
  ],
  verifiersRead: true,
};

test('verifiers are copied as client passwords, with a placeholder server_password', () => {
  const text = generateConfig(CATALOG, OPTS);
  const config = load(text);
  assert.deepEqual(Object.keys(config.pools), ['app', 'postgres']);
  const app = config.pools.app!;
  assert.equal(app.serverHost, 'db.example');
  assert.equal(app.serverPort, 5433);
  assert.equal(app.poolMode, 'transaction');
  assert.deepEqual(
    app.users.map((u) => [u.username, u.password, u.serverPassword, u.poolSize]),
    [
      ['md5_user', MD5, 'CHANGE-ME', 15],
      ['nopass', '', null, 15],
      ['postgres', SCRAM, 'CHANGE-ME', 15],
    ],
  );
  assert.deepEqual(config.pools.postgres!.users, app.users);
  assert.equal(config.general.host, '127.0.0.1');
  assert.equal(config.general.port, 6432);
  assert.equal(
    config.general.pgHba,
    [
      '# TYPE  DATABASE  USER  ADDRESS  METHOD',
      'host all "md5_user" 127.0.0.1/32 md5',
      'host all "md5_user" ::1/128 md5',
      'host all all 127.0.0.1/32 scram-sha-256',
      'host all all ::1/128 scram-sha-256',
      '',
    ].join('\n'),
  );
});

test('comments explain each secret, mark superusers and the connecting role', () => {
  const text = generateConfig(CATALOG, OPTS);
  const app = text.slice(text.indexOf('  "app":'), text.indexOf('  "postgres":'));
  assert.equal(
    app,
    [
      '  "app":',
      '    server_host: "db.example"',
      '    server_port: 5433',
      '    pool_mode: "transaction"',
      '    users:',
      '      - username: "md5_user"',
      "        # MD5 hash copied from pg_authid: clients log in with the role's own password (md5 auth only).",
      `        password: "${MD5}"`,
      "        # A verifier cannot log in to PostgreSQL: set this role's plaintext password here.",
      '        server_password: "CHANGE-ME"',
      '        pool_size: 15',
      '      - username: "nopass"',
      "        # Placeholder (the role has no password in pg_authid): set the client password (plaintext, or the role's verifier from",
      '        # pg_authid.rolpassword, then also server_password). Empty refuses every login.',
      '        password: ""',
      '        pool_size: 15',
      '      # superuser',
      '      - username: "postgres"',
      "        # SCRAM-SHA-256 verifier copied from pg_authid: clients log in with the role's own password.",
      `        password: "${SCRAM}"`,
      "        # A verifier cannot log in to PostgreSQL: set this role's plaintext password here.",
      '        # This is the role `doorman generate` connected as: the password it used works here.',
      '        server_password: "CHANGE-ME"',
      '        pool_size: 15',
      '',
      '',
    ].join('\n'),
  );
});

test('without pg_authid every user gets an empty placeholder password', () => {
  const catalog: Catalog = {
    databases: ['app'],
    roles: [
      { name: 'alice', verifier: null, superuser: false },
      { name: 'postgres', verifier: null, superuser: true },
    ],
    verifiersRead: false,
  };
  const text = generateConfig(catalog, { ...OPTS, poolMode: 'session', poolSize: 3, listenPort: 7000 });
  const config = load(text);
  assert.deepEqual(
    config.pools.app!.users.map((u) => [u.username, u.password, u.serverPassword, u.poolMode, u.poolSize]),
    [
      ['alice', '', null, 'session', 3],
      ['postgres', '', null, 'session', 3],
    ],
  );
  assert.equal(config.general.port, 7000);
  assert.equal(text.split('# Placeholder (pg_authid was not readable)').length - 1, 2);
  assert.equal(text.includes('CHANGE-ME'), false);
  assert.equal(text.includes(' md5\n'), false);
});

test('odd database and role names survive quoting', () => {
  const odd = [
    'has "quotes"',
    'back\\slash',
    'colon: hash # x',
    ' leading space',
    'new\nline',
    'tab\there',
    'ünï©ødé 🐘',
    'line\u2028sep',
    'del\u007f',
    '- dash',
    'yes',
    '123',
    '*alias',
    '&anchor',
    '{flow}',
  ];
  const catalog: Catalog = {
    databases: odd,
    roles: odd.map((name) => ({ name, verifier: MD5, superuser: false })),
    verifiersRead: true,
  };
  const text = generateConfig(catalog, { ...OPTS, serverHost: 'h"ost\n' });
  const config = load(text);
  // Integer-like keys ('123') come first in a JS object, so compare as sets.
  assert.deepEqual(Object.keys(config.pools).sort(), [...odd].sort());
  for (const db of odd) {
    assert.deepEqual(
      config.pools[db]!.users.map((u) => u.username),
      odd,
    );
    assert.equal(config.pools[db]!.serverHost, 'h"ost\n');
  }
  // Names pg_hba cannot quote (a double quote, control characters) get no md5 rule, and a note says so.
  const rules = config.general.pgHba!.split('\n').filter((l) => l.startsWith('host all "'));
  assert.equal(rules.length, 2 * 10);
  assert.ok(rules.includes('host all "colon: hash # x" 127.0.0.1/32 md5'));
  assert.ok(text.includes('  # 5 MD5 user(s) have names pg_hba cannot quote: they need a SCRAM verifier to log in.\n'));
});

test('reserved database names are skipped with a comment', () => {
  const catalog: Catalog = { databases: ['doorman', 'pgbouncer'], roles: CATALOG.roles, verifiersRead: true };
  const text = generateConfig(catalog, OPTS);
  assert.deepEqual(Object.keys(load(text).pools), []);
  assert.ok(text.includes('# Database "doorman" skipped: the name is reserved for the admin console.\n'));
  assert.ok(text.includes('# Database "pgbouncer" skipped: the name is reserved for the admin console.\n'));
  assert.deepEqual(parse(text).pools, {});
});

test('no login roles is an error rather than a config that does not load', () => {
  assert.throws(
    () => generateConfig({ databases: ['app'], roles: [], verifiersRead: true }, OPTS),
    /no login roles found: a pool needs at least one user/,
  );
});

test('yamlString escapes what YAML cannot carry raw', () => {
  assert.equal(yamlString('a"b\\c\n'), '"a\\"b\\\\c\\n"');
  assert.equal(yamlString('x\u0085\u2028\ufeff'), '"x\\u0085\\u2028\\ufeff"');
  assert.equal(parse(`k: ${yamlString('x\u0085\u2028\u007f\ufeff"\t')}`).k, 'x\u0085\u2028\u007f\ufeff"\t');
});
