import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { Backoff } from './backoff.js';
import { agentOptions, parseAddresses, parseLabels } from './options.js';

test('agent flags: addresses, labels (host filled in), TLS or --insecure, durations', () => {
  const o = agentOptions({ controlPlane: 'cp1:7000, 127.0.0.1:7001', nodeId: 'n1', labels: 'dc=x,cluster=c', insecure: true, initialWait: '2s' });
  assert.deepEqual(o.addresses, ['cp1:7000', '127.0.0.1:7001']);
  assert.deepEqual(o.labels, { dc: 'x', cluster: 'c', host: os.hostname() });
  assert.equal(o.tls, null);
  assert.equal(o.listen, null);
  assert.equal(o.initialWaitMs, 2000);
  assert.deepEqual(agentOptions({ controlPlane: 'cp:1', nodeId: 'n', insecure: true, listen: '127.0.0.1:6500' }).listen, { host: '127.0.0.1', port: 6500 });
  assert.equal(o.statusIntervalMs, 5000);
  const t = agentOptions({ controlPlane: 'cp:1', nodeId: 'n', labels: 'host=h', ca: 'ca', cert: 'c', key: 'k' });
  assert.deepEqual(t.tls, { ca: 'ca', cert: 'c', key: 'k' });
  assert.deepEqual(t.labels, { host: 'h' });
  assert.equal(t.initialWaitMs, 10_000);
});

test('agent flags: mistakes are named', () => {
  assert.throws(() => parseAddresses('cp1', '--control-plane'), /--control-plane: "cp1" is not host:port/);
  assert.throws(() => parseAddresses('cp1:70000', '--control-plane'), /is not host:port/);
  assert.throws(() => parseAddresses(' , ', '--control-plane'), /at least one/);
  assert.throws(() => parseLabels('a=1,b'), /"b" is not key=value/);
  assert.throws(() => parseLabels('a=1,a=2'), /"a" given twice/);
  assert.throws(() => agentOptions({ controlPlane: 'cp:1', insecure: true }), /--node-id is required/);
  assert.throws(() => agentOptions({ controlPlane: 'cp:1', nodeId: 'n' }), /give --ca, --cert and --key .* or --insecure/);
  assert.throws(() => agentOptions({ controlPlane: 'cp:1', nodeId: 'n', insecure: true, ca: 'x' }), /cannot be combined/);
  assert.throws(() => agentOptions({ controlPlane: 'cp:1', nodeId: 'n', insecure: true, initialWait: 'soon' }), /--initial-wait: must be a duration/);
  assert.throws(() => agentOptions({ controlPlane: 'cp:1', nodeId: 'n', insecure: true, listen: '6500' }), /--listen: "6500" is not host:port/);
});

test('backoff doubles up to the cap with jitter in [ceiling/2, ceiling], and reset starts over', () => {
  const lo = new Backoff(100, 1000, () => 0);
  assert.deepEqual([1, 2, 3, 4, 5].map(() => lo.next()), [50, 100, 200, 400, 500]);
  const hi = new Backoff(100, 1000, () => 1);
  assert.deepEqual([1, 2, 3, 4, 5].map(() => hi.next()), [100, 200, 400, 800, 1000]);
  hi.reset();
  assert.equal(hi.next(), 100);
});
