import { test } from 'node:test';
import assert from 'node:assert/strict';
import { md5PasswordHash, md5Response } from '../auth/md5.js';
import { ScramClientExchange, SCRAM_SHA_256 } from '../auth/scram.js';
import { readAuthentication } from '../protocol/backend.js';
import { passwordMessage, saslInitialResponse, saslResponse } from '../protocol/frontend.js';
import { ClientAuthExchange, type AuthOutcome } from './client-auth.js';
import { userCredentials } from './credentials.js';

const creds = (password: string) =>
  userCredentials({ username: 'u', password, poolSize: 1, minPoolSize: 0, reservePoolSize: 0, poolMode: 'transaction', serverUsername: 'u', serverPassword: null, serverLifetime: 1000 }).client;

function sent(o: AuthOutcome): { type: number; data: Buffer } {
  assert.equal(o.kind, 'send');
  const m = (o as { message: Buffer }).message;
  return readAuthentication(m, 0, m.length);
}

function scramLogin(x: ClientAuthExchange, password: string): AuthOutcome {
  assert.equal(sent(x.begin(null)).type, 10);
  const client = new ScramClientExchange(password);
  const first = saslInitialResponse(SCRAM_SHA_256, Buffer.from(client.clientFirst()));
  const cont = sent(x.onMessage(first, 0, first.length));
  assert.equal(cont.type, 11);
  const final = saslResponse(Buffer.from(client.handleServerFirst(cont.data.toString())));
  return x.onMessage(final, 0, final.length);
}

test('SCRAM against a plaintext password, and a wrong password fails', () => {
  const ok = scramLogin(new ClientAuthExchange(creds('secret'), 'u'), 'secret');
  assert.equal(ok.kind, 'ok');
  assert.ok((ok as { message: Buffer }).message.length > 0);
  assert.deepEqual(scramLogin(new ClientAuthExchange(creds('secret'), 'u'), 'nope'), { kind: 'failed' });
  // An unknown user goes through the same exchange and fails the same way.
  assert.deepEqual(scramLogin(new ClientAuthExchange(null, 'ghost'), 'secret'), { kind: 'failed' });
});

test('md5 against a stored md5 hash; an md5 rule with a SCRAM-stored password uses SCRAM', () => {
  const x = new ClientAuthExchange(creds(md5PasswordHash('secret', 'u')), 'u');
  const salt = sent(x.begin(null)).data;
  const reply = passwordMessage(md5Response('secret', 'u', salt));
  assert.deepEqual(x.onMessage(reply, 0, reply.length), { kind: 'ok', message: null });
  const y = new ClientAuthExchange(creds('SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$/IRYUQBZ45s/kW7oRpXVLdbn9GH4xK5+dKVnTpHD8ms=:0uzdqMDHoHZ0T3g0SnHGSjFj9JbBW4dYNxxd6K3eBYI='), 'u');
  assert.equal(sent(y.begin('md5')).type, 10);
});

test('cleartext, and malformed exchanges are protocol violations', () => {
  const x = new ClientAuthExchange(creds('secret'), 'u');
  assert.equal(sent(x.begin('password')).type, 3);
  const pw = passwordMessage('secret');
  assert.deepEqual(x.onMessage(pw, 0, pw.length), { kind: 'ok', message: null });
  const y = new ClientAuthExchange(creds('secret'), 'u');
  y.begin('scram-sha-256');
  const wrong = saslInitialResponse('SCRAM-SHA-256-PLUS', Buffer.from('p=tls-server-end-point,,n=,r=abc'));
  assert.equal(y.onMessage(wrong, 0, wrong.length).kind, 'violation');
  assert.equal(y.onMessage(pw, 0, pw.length).kind, 'violation');
  // A body that does not parse is thrown as ProtocolViolation (the session answers it with 08P01).
  const z = new ClientAuthExchange(creds('secret'), 'u');
  z.begin('scram-sha-256');
  assert.throws(() => z.onMessage(pw, 0, pw.length), { name: 'ProtocolViolation' });
});
