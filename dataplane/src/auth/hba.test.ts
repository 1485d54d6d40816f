import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HbaError, matchHba, parseHba, type HbaConnection, type HbaRule } from './hba.js';

const v4 = (bytes: number[], mask: number[]) => ({ kind: 'ip' as const, family: 4 as const, bytes: Buffer.from(bytes), mask: Buffer.from(mask) });
const v6 = (hex: string, maskHex: string) => ({ kind: 'ip' as const, family: 6 as const, bytes: Buffer.from(hex, 'hex'), mask: Buffer.from(maskHex, 'hex') });
const all = { kind: 'all' as const };
const name = (n: string) => ({ kind: 'name' as const, name: n });
const plain = (r: HbaRule) => ({ ...r, options: { ...r.options } });

test('parses every record type, lists, quoting, masks, options, comments and continuations', () => {
  const text = [
    '# TYPE DATABASE USER ADDRESS METHOD',
    '',
    'local\tall\tall\t\ttrust',
    'host  "My DB","all",db2  "Bob",all  10.1.0.0/16  md5  # trailing comment',
    'hostssl sameuser, replication  alice  fe80::/10  scram-sha-256 \\',
    '    clientcert=verify-full  note="a b#c"',
    'hostnossl all all 192.168.0.0 255.255.0.0 password\r',
    '   host all all all reject   ',
    'hostgssenc all all 2001:db8::1 ffff:ffff:ffff:ffff:: trust',
    'hostnogssenc all all ::ffff:10.0.0.0/104 trust',
  ].join('\n');
  const rules = parseHba(text, 'pg_hba.conf').map(plain);
  const base = { source: 'pg_hba.conf', options: {} };
  assert.deepEqual(rules, [
    { ...base, line: 3, type: 'local', databases: [all], users: [all], address: null, method: 'trust' },
    {
      ...base,
      line: 4,
      type: 'host',
      databases: [name('My DB'), name('all'), name('db2')],
      users: [name('Bob'), all],
      address: v4([10, 1, 0, 0], [255, 255, 0, 0]),
      method: 'md5',
    },
    {
      ...base,
      line: 5,
      type: 'hostssl',
      databases: [{ kind: 'sameuser' }, { kind: 'replication' }],
      users: [name('alice')],
      address: v6('fe800000000000000000000000000000', 'ffc00000000000000000000000000000'),
      method: 'scram-sha-256',
      options: { clientcert: 'verify-full', note: 'a b#c' },
    },
    {
      ...base,
      line: 7,
      type: 'hostnossl',
      databases: [all],
      users: [all],
      address: v4([192, 168, 0, 0], [255, 255, 0, 0]),
      method: 'password',
    },
    { ...base, line: 8, type: 'host', databases: [all], users: [all], address: all, method: 'reject' },
    {
      ...base,
      line: 9,
      type: 'hostgssenc',
      databases: [all],
      users: [all],
      address: v6('20010db8000000000000000000000001', 'ffffffffffffffff0000000000000000'),
      method: 'trust',
    },
    {
      ...base,
      line: 10,
      type: 'hostnogssenc',
      databases: [all],
      users: [all],
      address: v6('00000000000000000000ffff0a000000', 'ffffffffffffffffffffffffff000000'),
      method: 'trust',
    },
  ]);
});

test('an empty or comment-only file has no rules', () => {
  assert.deepEqual(parseHba('', 'x'), []);
  assert.deepEqual(parseHba('# nothing\n\n   \t\n# more\n', 'x'), []);
});

test('errors name the source, the line and the reason', () => {
  const cases: Array<[string, string]> = [
    ['host all all 10.0.0.0/8 foo', 't:1: unknown method "foo"'],
    ['\n\n# c\nhost all all 10.0.0.0/8 ldap', 't:4: authentication method "ldap" is not supported'],
    ['local all all cert', 't:1: authentication method "cert" is not supported'],
    ['local all all gss', 't:1: authentication method "gss" is not supported'],
    ['local all all sspi', 't:1: authentication method "sspi" is not supported'],
    ['local all all ident', 't:1: authentication method "ident" is not supported'],
    ['local all all peer', 't:1: authentication method "peer" is not supported'],
    ['local all all pam', 't:1: authentication method "pam" is not supported'],
    ['local all all radius', 't:1: authentication method "radius" is not supported'],
    ['local all all trust,md5', 't:1: multiple values in the authentication method'],
    ['hots all all all trust', 't:1: invalid connection type "hots"'],
    ['host,local all all all trust', 't:1: multiple values in the connection type'],
    ['host +admins all all trust', 't:1: group membership ("+admins") is not supported'],
    ['host all +admins all trust', 't:1: group membership ("+admins") is not supported'],
    ['host all bob,+admins all trust', 't:1: group membership ("+admins") is not supported'],
    ['host @dbs all all trust', 't:1: file inclusion ("@dbs") is not supported'],
    ['host all @users all trust', 't:1: file inclusion ("@users") is not supported'],
    ['host samerole all all trust', 't:1: "samerole" is not supported'],
    ['host samegroup all all trust', 't:1: "samegroup" is not supported'],
    ['host /^db all all trust', 't:1: regular expressions ("/^db") are not supported'],
    ['host all all samehost trust', 't:1: "samehost" is not supported'],
    ['host all all samenet trust', 't:1: "samenet" is not supported'],
    ['host all all db.example.com trust', 't:1: host names are not supported ("db.example.com"); use an IP address or CIDR range'],
    ['host all all .example.com trust', 't:1: host names are not supported (".example.com"); use an IP address or CIDR range'],
    ['host all all 10.0.0.0/33 trust', 't:1: invalid CIDR mask in address "10.0.0.0/33"'],
    ['host all all ::1/129 trust', 't:1: invalid CIDR mask in address "::1/129"'],
    ['host all all 10.0.0.0/ trust', 't:1: invalid CIDR mask in address "10.0.0.0/"'],
    ['host all all 10.0.0.0/8x trust', 't:1: invalid CIDR mask in address "10.0.0.0/8x"'],
    ['host all all 300.1.1.1/8 trust', 't:1: invalid IP address "300.1.1.1"'],
    ['host all all fe80::1%eth0/64 trust', 't:1: invalid IP address "fe80::1%eth0"'],
    ['host all all 10.0.0.1 trust', 't:1: IP address "10.0.0.1" without a mask (invalid mask "trust")'],
    ['host all all 10.0.0.1', 't:1: IP address "10.0.0.1" without a mask'],
    ['host all all 10.0.0.1 ffff:: trust', 't:1: IP address "10.0.0.1" and mask "ffff::" are of different families'],
    ['host all all 10.0.0.0/8,10.1.0.0/16 trust', 't:1: multiple values in the address field'],
    ['host', 't:1: end of line before the database field'],
    ['host all', 't:1: end of line before the user field'],
    ['host all all', 't:1: end of line before the address field'],
    ['host all all all', 't:1: end of line before the authentication method'],
    ['local all all', 't:1: end of line before the authentication method'],
    ['local all all # trust', 't:1: end of line before the authentication method'],
    ['host all all all trust foo', 't:1: authentication option "foo" is not in name=value form'],
    ['host all all all trust =x', 't:1: authentication option "=x" is not in name=value form'],
    ['host "all all all trust', 't:1: unterminated quoted string'],
    ['host all a,,b all trust', 't:1: empty element in a comma-separated list'],
    ['host all all,', 't:1: comma-separated list ends with a comma'],
    ['host all all,  # c', 't:1: comma-separated list ends with a comma'],
    // A continued record is reported at its first line; later lines keep their own numbers.
    ['host all \\\n  all all \\\n  bogus\nlocal all all trust', 't:1: unknown method "bogus"'],
    ['host all \\\nall all trust\n\nhost all all all nope', 't:4: unknown method "nope"'],
    ['local all all trust\r\nlocal all all nope\r\n', 't:2: unknown method "nope"'],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => parseHba(text, 't'),
      (e: unknown) => e instanceof HbaError && e.message === message,
      JSON.stringify(text),
    );
  }
});

test('HbaError carries its parts', () => {
  try {
    parseHba('local all all trust\nlocal all all nope', 'conf/hba');
    assert.fail('expected an HbaError');
  } catch (e) {
    assert.ok(e instanceof HbaError);
    assert.equal(e.source, 'conf/hba');
    assert.equal(e.line, 2);
    assert.equal(e.reason, 'unknown method "nope"');
    assert.equal(e.name, 'HbaError');
  }
});

const RULES = parseHba(
  [
    '# first match wins',
    'local        all            all      trust',
    'hostssl      all            "Admin"  10.0.0.0/8              scram-sha-256',
    'hostnossl    all            admin    10.0.0.0/8              reject',
    'host         sameuser       all      192.168.1.0 255.255.255.0 md5',
    'host         "db,one",db2   alice,bob 0.0.0.0/0              md5',
    'host         replication    all      all                     trust',
    'host         all            all      ::1/128                 trust',
    'host         all            all      2001:db8::/32           scram-sha-256',
    'host         all            all      ::ffff:172.16.0.0/108   password',
    'host         all            all      127.0.0.1/32            trust',
    'hostgssenc   all            all      all                     trust',
    'hostnogssenc all            nogss    all                     md5',
    'host         all            all      198.18.16.0/20          trust',
    'host         all            all      all                     reject',
  ].join('\n'),
  'rules',
);

test('matchHba picks the first matching rule', () => {
  const tcp = (address: string, user: string, database = 'app', ssl = false): HbaConnection => ({ local: false, ssl, database, user, address });
  const cases: Array<[string, HbaConnection, number]> = [
    ['unix socket', { local: true, ssl: false, database: 'app', user: 'x', address: '' }, 2],
    ['ssl, quoted user keeps case', tcp('10.1.2.3', 'Admin', 'app', true), 3],
    ['ssl, other case does not match', tcp('10.1.2.3', 'admin', 'app', true), 15],
    ['no ssl, hostssl skipped', tcp('10.1.2.3', 'Admin'), 15],
    ['hostnossl', tcp('10.1.2.3', 'admin'), 4],
    ['hostnossl outside the range', tcp('11.1.2.3', 'admin'), 15],
    ['sameuser with a mask column', tcp('192.168.1.77', 'carol', 'carol'), 5],
    ['sameuser, other database', tcp('192.168.1.77', 'carol', 'other'), 15],
    ['mask column, outside', tcp('192.168.2.1', 'carol', 'carol'), 15],
    ['IPv4-mapped client against an IPv4 rule', tcp('::ffff:192.168.1.77', 'carol', 'carol'), 5],
    ['quoted database with a comma', tcp('8.8.8.8', 'bob', 'db,one'), 6],
    ['part of a quoted name is not a name', tcp('8.8.8.8', 'bob', 'db'), 15],
    ['second database and first user of lists', tcp('8.8.8.8', 'alice', 'db2'), 6],
    ['replication keyword never matches a normal connection', tcp('127.0.0.1', 'x', 'replication'), 11],
    ['IPv6 loopback', tcp('::1', 'x'), 8],
    ['IPv6 prefix', tcp('2001:db8:1::5', 'x'), 9],
    ['IPv6 prefix, upper case client', tcp('2001:DB8:FFFF::', 'x'), 9],
    ['IPv6 outside the prefix', tcp('2001:db9::1', 'x'), 15],
    ['IPv4 client against an IPv4-mapped IPv6 rule', tcp('172.16.5.5', 'x'), 10],
    ['IPv4-mapped client against an IPv4-mapped IPv6 rule', tcp('::ffff:172.16.5.5', 'x'), 10],
    ['IPv4 loopback', tcp('127.0.0.1', 'x'), 11],
    ['IPv4-mapped loopback', tcp('::ffff:127.0.0.1', 'x'), 11],
    ['IPv4-mapped loopback in hex', tcp('::ffff:7f00:1', 'x'), 11],
    ['IPv4 127.0.0.2 is outside /32', tcp('127.0.0.2', 'x'), 15],
    ['hostgssenc never matches, hostnogssenc matches TCP', tcp('8.8.8.8', 'nogss'), 13],
    ['/20 lower edge', tcp('198.18.16.0', 'x'), 14],
    ['/20 upper edge', tcp('198.18.31.255', 'x'), 14],
    ['/20 just past', tcp('198.18.32.0', 'x'), 15],
    ['/20 just before', tcp('198.18.15.255', 'x'), 15],
    ['link-local with zone', tcp('fe80::1%eth0', 'x'), 15],
    ['unparsable address only matches "all"', tcp('not-an-ip', 'x'), 15],
  ];
  for (const [why, conn, line] of cases) {
    assert.equal(matchHba(RULES, conn)?.line, line, why);
  }
  assert.equal(matchHba(RULES, tcp('8.8.8.8', 'bob', 'db2'))?.method, 'md5');
});

test('matchHba returns null when nothing matches', () => {
  const rules = parseHba('hostssl all all all trust\nlocal app all md5', 'r');
  assert.equal(matchHba(rules, { local: false, ssl: false, database: 'app', user: 'u', address: '10.0.0.1' }), null);
  assert.equal(matchHba(rules, { local: true, ssl: false, database: 'other', user: 'u', address: '' }), null);
  assert.equal(matchHba(rules, { local: true, ssl: false, database: 'app', user: 'u', address: '' })?.line, 2);
  assert.equal(matchHba([], { local: true, ssl: false, database: 'app', user: 'u', address: '' }), null);
});

test('address forms: /0, non-octet prefixes, IPv6 masks, IPv4 never matches a true IPv6 client', () => {
  const rules = parseHba(
    [
      'host all a 0.0.0.0/0 trust',
      'host all b 10.0.0.0 255.0.0.0 trust',
      'host all c 2001:db8:: ffff:ffff:: trust',
      'host all d 10.128.0.0/9 trust',
      'host all e ::/0 trust',
    ].join('\n'),
    'r',
  );
  const m = (user: string, address: string): number | undefined =>
    matchHba(rules, { local: false, ssl: false, database: 'd', user, address })?.line;
  assert.equal(m('a', '203.0.113.9'), 1);
  assert.equal(m('a', '::ffff:203.0.113.9'), 1);
  assert.equal(m('a', '2001:db8::1'), undefined);
  assert.equal(m('b', '10.255.255.255'), 2);
  assert.equal(m('b', '11.0.0.0'), undefined);
  assert.equal(m('c', '2001:db8:abcd::1'), 3);
  assert.equal(m('c', '2001:db9::'), undefined);
  assert.equal(m('d', '10.128.0.1'), 4);
  assert.equal(m('d', '10.255.0.1'), 4);
  assert.equal(m('d', '10.127.255.255'), undefined);
  assert.equal(m('e', '2001:db8::1'), 5);
  assert.equal(m('e', '1.2.3.4'), 5); // an IPv4 client is checked as ::ffff:1.2.3.4
});
