import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errorLine, parsePgbenchSummary } from './pgbench-summary.js';

const NORMAL = `pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: /tmp/select-only.sql
scaling factor: 1
query mode: simple
number of clients: 10
number of threads: 2
maximum number of tries: 1
duration: 5 s
number of transactions actually processed: 123756
number of failed transactions: 0 (0.000%)
latency average = 0.233 ms
initial connection time = 12.345 ms
tps = 41767.184296 (without initial connection time)
`;

const CONNECT = `number of transactions actually processed: 1400
number of failed transactions: 3 (0.214%)
latency average = 330.1 ms
average connection time = 3.210 ms
tps = 297.518000 (including reconnection times)
`;

test('parsePgbenchSummary reads TPS, processed and failed transactions', () => {
  assert.deepEqual(parsePgbenchSummary(NORMAL, ''), { tps: 41767.184296, processed: 123756, failedTransactions: 0, aborted: false });
});

test('parsePgbenchSummary reads the --connect TPS line', () => {
  assert.deepEqual(parsePgbenchSummary(CONNECT, ''), { tps: 297.518, processed: 1400, failedTransactions: 3, aborted: false });
});

test('parsePgbenchSummary notices an aborted run and missing lines', () => {
  const stderr = 'pgbench: error: client 0 script 0 aborted in command 1 query 0: ERROR:  boom\npgbench: error: Run was aborted; the above results are incomplete.\n';
  assert.deepEqual(parsePgbenchSummary('number of transactions actually processed: 0\n', stderr), {
    tps: null,
    processed: 0,
    failedTransactions: null,
    aborted: true,
  });
});

test('errorLine prefers the server error over pgbench chatter', () => {
  const stderr = [
    'pgbench: error: client 0 script 0 aborted in command 1 query 0: ERROR:  prepared statement "P_0" does not exist',
    'pgbench: error: Run was aborted; the above results are incomplete.',
  ].join('\n');
  assert.equal(errorLine(stderr), 'pgbench: error: client 0 script 0 aborted in command 1 query 0: ERROR:  prepared statement "P_0" does not exist');
});

test('errorLine falls back to pgbench errors, then to the first line', () => {
  assert.equal(errorLine('starting\npgbench: error: need at least 2003 open files, but system limit is 1024\n'), 'pgbench: error: need at least 2003 open files, but system limit is 1024');
  assert.equal(errorLine('\nsomething odd\nmore\n'), 'something odd');
  assert.equal(errorLine(''), null);
});

test('errorLine clips long lines', () => {
  assert.equal(errorLine(`ERROR: ${'x'.repeat(20)}`, 10), 'ERROR: xx…');
});
