import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResourceType, type ControlPlaneMessage } from '@doorman/proto/api';
import { NodeStream, StreamState, type Desired } from './node-stream.js';

function setup(secretsAllowed = true): { stream: NodeStream; sent: ControlPlaneMessage[] } {
  const sent: ControlPlaneMessage[] = [];
  let n = 0;
  const stream = new NodeStream({ send: (m) => sent.push(m), nonce: () => `n${++n}`, secretsAllowed });
  return { stream, sent };
}

const hello = (configVersion = 0, secretsVersion = 0) => ({
  hello: { node: { nodeId: 'dp1', labels: { dc: 'a' }, version: '1', hostname: 'h', pid: 1 }, configVersion, secretsVersion, topologyVersion: 0 },
});

function desired(config: number, secrets: number): Desired {
  return {
    config: { version: config, documentJson: `{"v":${config}}` },
    secrets: { version: secrets, build: () => ({ users: [], adminPassword: 'a' }) },
  };
}

test('the first message must be Hello with a node id', () => {
  assert.equal(setup().stream.receive({ ack: { type: 1, nonce: 'x', version: 1 } }).kind, 'protocol-error');
  assert.deepEqual(setup().stream.receive({ hello: { ...hello().hello, node: undefined } }), { kind: 'protocol-error', reason: 'Hello.node.node_id is required' });
});

test('secrets go out before config; versions the node already runs are not pushed', () => {
  const { stream, sent } = setup();
  assert.equal(stream.receive(hello(3, 1)).kind, 'hello');
  assert.equal(stream.state, StreamState.Active);
  assert.equal(stream.sync(desired(3, 1)), 0);
  assert.equal(stream.sync(desired(4, 2)), 2);
  assert.deepEqual(sent, [
    { secrets: { users: [], adminPassword: 'a', version: 2, nonce: 'n1' } },
    { config: { version: 4, nonce: 'n2', documentJson: '{"v":4}' } },
  ]);
});

test('stale nonces are ignored; ACK of the latest nonce moves acked', () => {
  const { stream } = setup();
  stream.receive(hello());
  stream.sync(desired(1, 1));
  stream.sync(desired(2, 1));
  assert.deepEqual(stream.receive({ ack: { type: ResourceType.RESOURCE_TYPE_CONFIG, nonce: 'n2', version: 1 } }), { kind: 'ignored', reason: 'stale nonce' });
  assert.equal(stream.config.acked, 0);
  assert.equal(stream.receive({ ack: { type: ResourceType.RESOURCE_TYPE_CONFIG, nonce: 'n3', version: 2 } }).kind, 'acked');
  assert.equal(stream.config.acked, 2);
});

test('a NACKed version is never re-sent; the next version is', () => {
  const { stream, sent } = setup();
  stream.receive(hello(1, 1));
  stream.sync(desired(2, 1));
  const nack = { type: ResourceType.RESOURCE_TYPE_CONFIG, nonce: 'n1', rejectedVersion: 2, keptVersion: 1, errorDetail: 'general.tls_certificate: cannot read' };
  assert.equal(stream.receive({ nack }).kind, 'nacked');
  assert.deepEqual([stream.config.acked, stream.config.nacked, stream.config.nackError], [1, 2, 'general.tls_certificate: cannot read']);
  for (let i = 0; i < 5; i++) assert.equal(stream.sync(desired(2, 1)), 0);
  assert.equal(stream.sync(desired(3, 1)), 1);
  assert.equal(sent.length, 2);
  assert.equal(stream.receive({ ack: { type: ResourceType.RESOURCE_TYPE_CONFIG, nonce: 'n2', version: 3 } }).kind, 'acked');
  assert.deepEqual([stream.config.nacked, stream.config.nackError], [0, '']);
});

test('a reconnecting node is not sent the version it NACKed on an earlier stream', () => {
  const { stream } = setup();
  stream.receive(hello(1, 1), { nackedConfig: 2, nackError: 'bad' });
  assert.equal(stream.sync(desired(2, 1)), 0);
});

test('secrets are withheld on a plaintext stream unless allowed', () => {
  const { stream, sent } = setup(false);
  stream.receive(hello());
  assert.equal(stream.sync(desired(1, 1)), 1);
  assert.equal(stream.secretsWithheld, true);
  assert.deepEqual(Object.keys(sent[0] ?? {}), ['config']);
});
