import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import {
  checkScramVerifier,
  makeScramVerifier,
  parseScramVerifier,
  saltedPassword,
  saslPrep,
  ScramClientExchange,
  ScramError,
  ScramServerExchange,
  type ScramStep,
  type ScramVerifier,
} from './scram.js';

// Independent reference computations (straight from RFC 5802's formulas), used to check the module.
const refSalted = (pw: Buffer, salt: Buffer, i: number): Buffer => pbkdf2Sync(pw, salt, i, 32, 'sha256');
const refHmac = (k: Buffer, d: string | Buffer): Buffer => createHmac('sha256', k).update(d).digest();
const refH = (d: Buffer): Buffer => createHash('sha256').update(d).digest();
function refProof(salted: Buffer, authMessage: Buffer): { proof: string; serverSignature: string } {
  const clientKey = refHmac(salted, 'Client Key');
  const sig = refHmac(refH(clientKey), authMessage);
  const proof = Buffer.from(clientKey.map((b, i) => b ^ sig[i]!));
  return { proof: proof.toString('base64'), serverSignature: refHmac(refHmac(salted, 'Server Key'), authMessage).toString('base64') };
}

const ok = (step: ScramStep): string => {
  assert.equal(step.ok, true, step.ok ? '' : step.error);
  return step.ok ? step.reply : '';
};
const err = (step: ScramStep): string => {
  assert.equal(step.ok, false);
  return step.ok ? '' : step.error;
};
const verifierOf = (text: string): ScramVerifier => {
  const v = parseScramVerifier(text);
  assert.ok(v !== null, text);
  return v;
};

// RFC 7677 section 3.
const RFC_SALT = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
const RFC_CLIENT_NONCE = 'rOprNGfwEbeRWgbNEkqO';
const RFC_SERVER_NONCE = '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
const RFC_NONCE = RFC_CLIENT_NONCE + RFC_SERVER_NONCE;
const RFC_SERVER_FIRST = `r=${RFC_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`;
const RFC_CLIENT_FINAL = `c=biws,r=${RFC_NONCE},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=`;
const RFC_SERVER_FINAL = 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=';

test('server side reproduces the RFC 7677 example exchange', () => {
  const verifier = verifierOf(makeScramVerifier('pencil', 4096, RFC_SALT));
  const server = new ScramServerExchange(verifier, RFC_SERVER_NONCE);
  assert.equal(ok(server.handleClientFirst(Buffer.from(`n,,n=user,r=${RFC_CLIENT_NONCE}`))), RFC_SERVER_FIRST);
  assert.equal(server.clientKey, null);
  assert.equal(ok(server.handleClientFinal(Buffer.from(RFC_CLIENT_FINAL))), RFC_SERVER_FINAL);
  const salted = refSalted(Buffer.from('pencil'), RFC_SALT, 4096);
  assert.deepEqual(server.clientKey, refHmac(salted, 'Client Key'));
});

test('makeScramVerifier matches an independent computation of StoredKey and ServerKey', () => {
  const salted = refSalted(Buffer.from('pencil'), RFC_SALT, 4096);
  const storedKey = refH(refHmac(salted, 'Client Key')).toString('base64');
  const serverKey = refHmac(salted, 'Server Key').toString('base64');
  assert.equal(makeScramVerifier('pencil', 4096, RFC_SALT), `SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$${storedKey}:${serverKey}`);
});

test('client side with the RFC 7677 nonce and server-first-message (PostgreSQL sends n= empty)', () => {
  const client = new ScramClientExchange('pencil', Buffer.from(RFC_CLIENT_NONCE, 'base64'));
  assert.equal(client.clientFirst(), `n,,n=,r=${RFC_CLIENT_NONCE}`);
  const final = client.handleServerFirst(RFC_SERVER_FIRST);
  const authMessage = Buffer.from(`n=,r=${RFC_CLIENT_NONCE},${RFC_SERVER_FIRST},c=biws,r=${RFC_NONCE}`);
  const ref = refProof(refSalted(Buffer.from('pencil'), RFC_SALT, 4096), authMessage);
  assert.equal(final, `c=biws,r=${RFC_NONCE},p=${ref.proof}`);
  client.verifyServerFinal(`v=${ref.serverSignature}`);
});

test('client and server complete an exchange with a verifier from makeScramVerifier', () => {
  const verifier = verifierOf(makeScramVerifier('correct horse'));
  assert.equal(verifier.iterations, 4096);
  assert.equal(verifier.salt.length, 16);
  const server = new ScramServerExchange(verifier);
  const client = new ScramClientExchange('correct horse');
  const first = client.clientFirst();
  assert.match(first, /^n,,n=,r=[A-Za-z0-9+/]{24}$/);
  const serverFirst = ok(server.handleClientFirst(Buffer.from(first)));
  assert.match(serverFirst, /^r=[A-Za-z0-9+/]{48},s=[A-Za-z0-9+/]{22}==,i=4096$/);
  const serverFinal = ok(server.handleClientFinal(Buffer.from(client.handleServerFirst(serverFirst))));
  client.verifyServerFinal(serverFinal);
  const salted = refSalted(Buffer.from('correct horse'), verifier.salt, 4096);
  assert.deepEqual(server.clientKey, refHmac(salted, 'Client Key'));
});

test('passthrough: the ClientKey recovered by the server logs in without the password', () => {
  const verifier = verifierOf(makeScramVerifier('s3cr3t', 4096));
  const front = new ScramServerExchange(verifier);
  const user = new ScramClientExchange('s3cr3t');
  const sf = ok(front.handleClientFirst(Buffer.from(user.clientFirst())));
  user.verifyServerFinal(ok(front.handleClientFinal(Buffer.from(user.handleServerFirst(sf)))));
  const clientKey = front.clientKey;
  assert.ok(clientKey !== null);

  const backend = new ScramServerExchange(verifier);
  const pooler = new ScramClientExchange({ clientKey, serverKey: verifier.serverKey });
  const bsf = ok(backend.handleClientFirst(Buffer.from(pooler.clientFirst())));
  pooler.verifyServerFinal(ok(backend.handleClientFinal(Buffer.from(pooler.handleServerFirst(bsf)))));
  assert.deepEqual(backend.clientKey, clientKey);
});

test('passthrough keys of the wrong size are refused', () => {
  assert.throws(
    () => new ScramClientExchange({ clientKey: Buffer.alloc(31), serverKey: Buffer.alloc(32) }),
    (e: unknown) => e instanceof ScramError && e.message === 'ClientKey and ServerKey must be 32 bytes',
  );
});

test('a wrong password is rejected and exposes no ClientKey', () => {
  const server = new ScramServerExchange(verifierOf(makeScramVerifier('right', 4096)));
  const client = new ScramClientExchange('wrong');
  const sf = ok(server.handleClientFirst(Buffer.from(client.clientFirst())));
  assert.equal(err(server.handleClientFinal(Buffer.from(client.handleServerFirst(sf)))), 'password authentication failed');
  assert.equal(server.clientKey, null);
});

test('a client-final-message with a tampered nonce is rejected', () => {
  const server = new ScramServerExchange(verifierOf(makeScramVerifier('pencil', 4096, RFC_SALT)), RFC_SERVER_NONCE);
  ok(server.handleClientFirst(Buffer.from(`n,,n=user,r=${RFC_CLIENT_NONCE}`)));
  const tampered = RFC_CLIENT_FINAL.replace('%hvY', '%hvZ');
  assert.equal(err(server.handleClientFinal(Buffer.from(tampered))), 'SCRAM nonce mismatch');
  assert.equal(server.clientKey, null);
});

test('a tampered proof is rejected', () => {
  const server = new ScramServerExchange(verifierOf(makeScramVerifier('pencil', 4096, RFC_SALT)), RFC_SERVER_NONCE);
  ok(server.handleClientFirst(Buffer.from(`n,,n=user,r=${RFC_CLIENT_NONCE}`)));
  const tampered = RFC_CLIENT_FINAL.replace('p=dHzb', 'p=dHzc');
  assert.equal(err(server.handleClientFinal(Buffer.from(tampered))), 'password authentication failed');
});

// Verifiers produced by PostgreSQL 15.20 (CREATE ROLE ... PASSWORD with password_encryption =
// 'scram-sha-256', UTF8 database). Re-deriving each from its password and salt must give the same text.
const PG15: Array<{ password: string; verifier: string; why: string }> = [
  {
    why: 'ASCII',
    password: 'secret',
    verifier: 'SCRAM-SHA-256$4096:b1TCGu2ABLpZTSuB023c3A==$huAdMhicqfBV1UdO6DQnkPQRZl0oFqN27zw7ietfUH8=:sG9v9cjIc4oP+WyvvRuf2jBWYTT/MYP6HEknpJ4jwdU=',
  },
  {
    why: 'non-ASCII letters, already normalized',
    password: 'pässwörd',
    verifier: 'SCRAM-SHA-256$4096:iNhWYvDaPF26AVpC3xzQKw==$DbRLB+2CS0kiGHMIDN76vhWWTNzLdIKX0DVcNnQ792g=:5lLLzD/QXHZp/nf7xHYRMPQjKniDcqMSgZejQyzQh6w=',
  },
  {
    why: 'no-break space mapped to space',
    password: 'a\u00a0b',
    verifier: 'SCRAM-SHA-256$4096:JlwT3oiY/tTlnx9ENg9SLw==$z0RI2UHaBrbDp4TjOJue/xewrlwDo72vT598lUXSv4U=:devkTvGl/Kxj/D7CvFPNU4JXnKI2o3+RAPTlYjjpUkM=',
  },
  {
    why: 'ligature decomposed by NFKC',
    password: '\ufb01x',
    verifier: 'SCRAM-SHA-256$4096:xCoznNRPapHyF2L16sm2Ew==$qnYhtE6qkQl13Hd5yNQQVhgd3YBPFIGbiu3FxWvZtSk=:WWgKJ87kNVWDgdDtftfHActmai3d0c94r023fqomMok=',
  },
  {
    why: 'control character: falls back to the raw bytes',
    password: '\u00e9\u0001',
    verifier: 'SCRAM-SHA-256$4096:FQMF+KiVlf46HSvv34tFVA==$rjo9wjycGZ2HABtqf0visPWBZYndD+D9L5PhlHjI4J8=:2YEJr4GmmE4VQe5PIf7TD9g59bsZcoU8aeCwIRJwfBQ=',
  },
  {
    why: 'soft hyphen mapped to nothing',
    password: 'x\u00ady',
    verifier: 'SCRAM-SHA-256$4096:qHXl1Be1Sn55iDy0W2oRAg==$RJFlgDrOkjiAIidqni9T/SnDaE9EF13enl4TimZhzAw=:l3isk75/50CZqXxm1aDQMKqlXWDzni/Jxd2c6ly4iow=',
  },
  {
    why: 'zero width space (in both the space and the mapped-to-nothing tables)',
    password: 'a\u200bb',
    verifier: 'SCRAM-SHA-256$4096:zb27TcOps1x3Tax9HaqcUA==$aSqkkJutyhqb5nSrlQX1viAfbhUkAhh/pzqtqJadN3M=:skpqjFLUt1+foijs3PJCxgGvG0cx5aGbX2LPHfXficQ=',
  },
  {
    why: 'roman numeral, compatibility mapping',
    password: '\u2163',
    verifier: 'SCRAM-SHA-256$4096:V2TynR4f2OWG8r39j8Wqdg==$ktvpf8C7XRo/TxHnoWzufNbJ65RKNBp4ooexKwOGyL0=:5R1P5x3hVxTXfCw4EhhGhC1PDNrrpdOIftPPS+6/oA0=',
  },
];

for (const { why, password, verifier } of PG15) {
  test(`PostgreSQL 15 verifier is reproduced and accepted: ${why}`, () => {
    const v = verifierOf(verifier);
    assert.equal(makeScramVerifier(password, v.iterations, v.salt), verifier);
    const server = new ScramServerExchange(v);
    const client = new ScramClientExchange(password);
    const sf = ok(server.handleClientFirst(Buffer.from(client.clientFirst())));
    client.verifyServerFinal(ok(server.handleClientFinal(Buffer.from(client.handleServerFirst(sf)))));
  });
}

test('SASLprep equivalents authenticate against the PostgreSQL verifier', () => {
  const nbsp = verifierOf(PG15[2]!.verifier);
  assert.equal(makeScramVerifier('a b', 4096, nbsp.salt), PG15[2]!.verifier);
  const liga = verifierOf(PG15[3]!.verifier);
  assert.equal(makeScramVerifier('fix', 4096, liga.salt), PG15[3]!.verifier);
  const hyphen = verifierOf(PG15[5]!.verifier);
  assert.equal(makeScramVerifier('xy', 4096, hyphen.salt), PG15[5]!.verifier);
});

test('saslPrep', () => {
  const cases: Array<[string, string]> = [
    ['plain', 'plain'],
    ['ctl\u0001ascii', 'ctl\u0001ascii'], // pure ASCII is used untouched
    ['\ufb01', 'fi'],
    ['e\u0301', '\u00e9'],
    ['\u2163', 'IV'], // roman numeral four, compatibility mapping
    ['a\u3000b', 'a b'],
    ['a\u200bb', 'a b'], // zero width space is in the non-ASCII space table
    ['\u00e9\u0007', '\u00e9\u0007'], // prohibited: raw
    ['\u00e9\ue000', '\u00e9\ue000'], // private use: raw
    ['\ufb01\u0085', '\ufb01\u0085'], // non-ASCII control: raw, not normalized
  ];
  for (const [input, expected] of cases) assert.deepEqual(saslPrep(input), Buffer.from(expected, 'utf8'), JSON.stringify(input));
});

test('saltedPassword equals PBKDF2 and its cached result cannot be corrupted by callers', () => {
  const salt = Buffer.from('0123456789abcdef');
  const expected = refSalted(Buffer.from('memo'), salt, 16);
  const a = saltedPassword('memo', salt, 16);
  assert.deepEqual(a, expected);
  a.fill(0);
  assert.deepEqual(saltedPassword('memo', salt, 16), expected);
  assert.deepEqual(saltedPassword('memo', salt, 17), refSalted(Buffer.from('memo'), salt, 17));
  // More distinct keys than the cache holds: answers stay right after evictions.
  for (let i = 0; i < 300; i++) saltedPassword(`p${i}`, salt, 1);
  assert.deepEqual(saltedPassword('p0', salt, 1), refSalted(Buffer.from('p0'), salt, 1));
  assert.deepEqual(saltedPassword('memo', salt, 16), expected);
});

test('parseScramVerifier decodes the fields', () => {
  const v = verifierOf(PG15[0]!.verifier);
  assert.equal(v.iterations, 4096);
  assert.equal(v.salt.toString('base64'), 'b1TCGu2ABLpZTSuB023c3A==');
  assert.equal(v.storedKey.toString('base64'), 'huAdMhicqfBV1UdO6DQnkPQRZl0oFqN27zw7ietfUH8=');
  assert.equal(v.serverKey.toString('base64'), 'sG9v9cjIc4oP+WyvvRuf2jBWYTT/MYP6HEknpJ4jwdU=');
});

test('malformed verifiers are refused with a reason', () => {
  const K = 'huAdMhicqfBV1UdO6DQnkPQRZl0oFqN27zw7ietfUH8=';
  const cases: Array<[string, string]> = [
    ['md5abc', 'does not start with "SCRAM-SHA-256$"'],
    ['SCRAM-SHA-1$4096:c2FsdA==$' + K + ':' + K, 'does not start with "SCRAM-SHA-256$"'],
    ['SCRAM-SHA-256$4096:c2FsdA==', 'expected "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>"'],
    [`SCRAM-SHA-256$4096$${K}:${K}`, 'expected "<iterations>:<salt>" after the mechanism'],
    [`SCRAM-SHA-256$4096:c2FsdA==$${K}`, 'expected "<StoredKey>:<ServerKey>" at the end'],
    [`SCRAM-SHA-256$4096:c2FsdA==$${K}:${K}:${K}`, 'expected "<StoredKey>:<ServerKey>" at the end'],
    [`SCRAM-SHA-256$0:c2FsdA==$${K}:${K}`, 'invalid iteration count "0"'],
    [`SCRAM-SHA-256$-1:c2FsdA==$${K}:${K}`, 'invalid iteration count "-1"'],
    [`SCRAM-SHA-256$4096x:c2FsdA==$${K}:${K}`, 'invalid iteration count "4096x"'],
    [`SCRAM-SHA-256$4096:$${K}:${K}`, 'salt is not valid base64'],
    [`SCRAM-SHA-256$4096:c2Fsd!==$${K}:${K}`, 'salt is not valid base64'],
    [`SCRAM-SHA-256$4096:c2FsdA==$c2FsdA==:${K}`, 'StoredKey is not 32 bytes of base64'],
    [`SCRAM-SHA-256$4096:c2FsdA==$${K}:${K.slice(0, -1)}`, 'ServerKey is not 32 bytes of base64'],
  ];
  for (const [input, reason] of cases) {
    assert.deepEqual(checkScramVerifier(input), { ok: false, error: reason }, input);
    assert.equal(parseScramVerifier(input), null);
  }
});

test('server accepts "y,," (client could bind, server did not offer) with c=eSws', () => {
  const server = new ScramServerExchange(verifierOf(makeScramVerifier('pencil', 4096, RFC_SALT)), RFC_SERVER_NONCE);
  ok(server.handleClientFirst(Buffer.from(`y,,n=,r=${RFC_CLIENT_NONCE}`)));
  const authMessage = Buffer.from(`n=,r=${RFC_CLIENT_NONCE},${RFC_SERVER_FIRST},c=eSws,r=${RFC_NONCE}`);
  const ref = refProof(refSalted(Buffer.from('pencil'), RFC_SALT, 4096), authMessage);
  assert.equal(ok(server.handleClientFinal(Buffer.from(`c=eSws,r=${RFC_NONCE},p=${ref.proof}`))), `v=${ref.serverSignature}`);
});

test('server ignores the user name and extensions, and keeps the exact bytes in the AuthMessage', () => {
  const server = new ScramServerExchange(verifierOf(makeScramVerifier('pencil', 4096, RFC_SALT)), RFC_SERVER_NONCE);
  const bare = `n=j\u00fcrgen=2Cx,r=${RFC_CLIENT_NONCE},x=ext`;
  ok(server.handleClientFirst(Buffer.from(`n,,${bare}`, 'utf8')));
  const without = `c=biws,r=${RFC_NONCE},y=more`;
  const ref = refProof(refSalted(Buffer.from('pencil'), RFC_SALT, 4096), Buffer.from(`${bare},${RFC_SERVER_FIRST},${without}`, 'utf8'));
  assert.equal(ok(server.handleClientFinal(Buffer.from(`${without},p=${ref.proof}`))), `v=${ref.serverSignature}`);
});

const serverAfterFirst = (): ScramServerExchange => {
  const server = new ScramServerExchange(verifierOf(makeScramVerifier('pencil', 4096, RFC_SALT)), RFC_SERVER_NONCE);
  ok(server.handleClientFirst(Buffer.from(`n,,n=,r=${RFC_CLIENT_NONCE}`)));
  return server;
};

test('malformed client-first-messages are refused with a reason', () => {
  const cases: Array<[string, string]> = [
    ['', 'malformed SCRAM message: invalid GS2 header'],
    ['n', 'malformed SCRAM message: invalid GS2 header'],
    ['x,,n=,r=abc', 'malformed SCRAM message: invalid GS2 header'],
    ['n;,n=,r=abc', 'malformed SCRAM message: invalid GS2 header'],
    ['n,x,n=,r=abc', 'malformed SCRAM message: invalid GS2 header'],
    ['p=tls-server-end-point,,n=,r=abc', 'channel binding is not supported: SCRAM-SHA-256-PLUS was not offered'],
    ['n,a=admin,n=,r=abc', 'client uses an authorization identity, which is not supported'],
    ['n,,m=ext,n=,r=abc', 'client requires an unsupported SCRAM extension'],
    ['n,,r=abc', 'malformed SCRAM message: expected attribute "n" (user name)'],
    ['n,,n=', 'malformed SCRAM message: expected attribute "r" (nonce)'],
    ['n,,n=,s=abc', 'malformed SCRAM message: expected attribute "r" (nonce)'],
    ['n,,n=,r=', 'malformed SCRAM message: nonce is empty or not printable'],
    ['n,,n=,r=ab\u00e9', 'malformed SCRAM message: nonce is empty or not printable'],
    ['n,,n=,r=abc,', 'malformed SCRAM message: invalid attribute list in client-first-message'],
    ['n,,n=,r=abc,junk', 'malformed SCRAM message: invalid attribute list in client-first-message'],
  ];
  for (const [input, reason] of cases) {
    const server = new ScramServerExchange(verifierOf(makeScramVerifier('x', 1, RFC_SALT)));
    assert.equal(err(server.handleClientFirst(Buffer.from(input))), reason, input);
    assert.equal(err(server.handleClientFinal(Buffer.from(RFC_CLIENT_FINAL))), 'unexpected SCRAM client-final-message');
  }
});

test('malformed client-final-messages are refused with a reason', () => {
  const P = 'dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=';
  const cases: Array<[string, string]> = [
    ['', 'malformed SCRAM message: invalid attribute list in client-final-message'],
    ['c=biws', 'malformed SCRAM message: invalid attribute list in client-final-message'],
    [`c=biws,r=${RFC_NONCE}`, 'malformed SCRAM message: invalid attribute list in client-final-message'],
    [`c=biws,r=${RFC_NONCE},,p=${P}`, 'malformed SCRAM message: invalid attribute list in client-final-message'],
    [`r=${RFC_NONCE},c=biws,p=${P}`, 'malformed SCRAM message: expected attribute "c" (channel binding)'],
    [`c=eSws,r=${RFC_NONCE},p=${P}`, 'SCRAM channel binding check failed'],
    [`c=,r=${RFC_NONCE},p=${P}`, 'SCRAM channel binding check failed'],
    [`c=biws,x=1,p=${P}`, 'malformed SCRAM message: expected attribute "r" (nonce)'],
    [`c=biws,r=${RFC_CLIENT_NONCE},p=${P}`, 'SCRAM nonce mismatch'],
    [`c=biws,r=${RFC_NONCE},p=${P},x=1`, 'malformed SCRAM message: expected attribute "p" (proof) last'],
    [`c=biws,r=${RFC_NONCE},p=not base64!`, 'malformed SCRAM message: invalid proof'],
    [`c=biws,r=${RFC_NONCE},p=`, 'malformed SCRAM message: invalid proof'],
    [`c=biws,r=${RFC_NONCE},p=${P.slice(4)}`, 'malformed SCRAM message: invalid proof'],
  ];
  for (const [input, reason] of cases) {
    const server = serverAfterFirst();
    assert.equal(err(server.handleClientFinal(Buffer.from(input))), reason, input);
    assert.equal(server.clientKey, null);
    // A failed exchange stays failed, even when the right message follows.
    assert.equal(err(server.handleClientFinal(Buffer.from(RFC_CLIENT_FINAL))), 'unexpected SCRAM client-final-message');
  }
});

test('server refuses messages out of order', () => {
  const server = new ScramServerExchange(verifierOf(makeScramVerifier('x', 1, RFC_SALT)));
  assert.equal(err(server.handleClientFinal(Buffer.from(RFC_CLIENT_FINAL))), 'unexpected SCRAM client-final-message');
  const done = new ScramServerExchange(verifierOf(makeScramVerifier('pencil', 4096, RFC_SALT)), RFC_SERVER_NONCE);
  ok(done.handleClientFirst(Buffer.from(`n,,n=user,r=${RFC_CLIENT_NONCE}`)));
  ok(done.handleClientFinal(Buffer.from(RFC_CLIENT_FINAL)));
  assert.equal(err(done.handleClientFirst(Buffer.from(`n,,n=user,r=${RFC_CLIENT_NONCE}`))), 'unexpected SCRAM client-first-message');
  assert.equal(err(done.handleClientFinal(Buffer.from(RFC_CLIENT_FINAL))), 'unexpected SCRAM client-final-message');
});

const scramError = (message: string) => (e: unknown) => {
  assert.ok(e instanceof ScramError);
  assert.equal(e.message, message);
  return true;
};

test('client rejects bad server-first-messages', () => {
  const N = 'Y2xpZW50bm9uY2U='; // base64 of "clientnonce"
  const nonceBytes = Buffer.from('clientnonce');
  const cases: Array<[string, string]> = [
    ['e=other-error', 'server error: other-error'],
    ['', 'malformed server-first-message'],
    [`m=ext,r=${N}x,s=c2FsdA==,i=4096`, 'server requires an unsupported SCRAM extension'],
    [`s=c2FsdA==,r=${N}x,i=4096`, 'malformed server-first-message: expected attributes r, s, i'],
    [`r=${N}x,s=c2FsdA==`, 'malformed server-first-message: expected attributes r, s, i'],
    [`r=${N},s=c2FsdA==,i=4096`, 'server nonce does not extend the client nonce'],
    [`r=other${N},s=c2FsdA==,i=4096`, 'server nonce does not extend the client nonce'],
    [`r=${N}x,s=c2FsdA=,i=4096`, 'malformed server-first-message: invalid salt'],
    [`r=${N}x,s=,i=4096`, 'malformed server-first-message: invalid salt'],
    [`r=${N}x,s=c2FsdA==,i=0`, 'malformed server-first-message: invalid iteration count "0"'],
    [`r=${N}x,s=c2FsdA==,i=ten`, 'malformed server-first-message: invalid iteration count "ten"'],
    [`r=${N}x,s=c2FsdA==,i=99999999999`, 'malformed server-first-message: invalid iteration count "99999999999"'],
  ];
  for (const [input, reason] of cases) {
    const client = new ScramClientExchange('pw', nonceBytes);
    assert.equal(client.clientFirst(), `n,,n=,r=${N}`);
    assert.throws(() => client.handleServerFirst(input), scramError(reason), input);
    assert.throws(() => client.verifyServerFinal('v=AAAA'), scramError('unexpected server-final-message'));
  }
});

test('client accepts an iteration count below 4096 and server-first extensions', () => {
  const client = new ScramClientExchange('pw', Buffer.from('clientnonce'));
  client.clientFirst();
  const sf = 'r=Y2xpZW50bm9uY2U=srv,s=c2FsdA==,i=1,x=ext';
  const final = client.handleServerFirst(sf);
  const ref = refProof(refSalted(Buffer.from('pw'), Buffer.from('salt'), 1), Buffer.from(`n=,r=Y2xpZW50bm9uY2U=,${sf},c=biws,r=Y2xpZW50bm9uY2U=srv`));
  assert.equal(final, `c=biws,r=Y2xpZW50bm9uY2U=srv,p=${ref.proof}`);
  client.verifyServerFinal(`v=${ref.serverSignature},x=ext`);
});

test('client rejects bad server-final-messages', () => {
  const good = refProof(
    refSalted(Buffer.from('pencil'), RFC_SALT, 4096),
    Buffer.from(`n=,r=${RFC_CLIENT_NONCE},${RFC_SERVER_FIRST},c=biws,r=${RFC_NONCE}`),
  ).serverSignature;
  const wrong = Buffer.from(good, 'base64').map((b) => b ^ 1);
  const cases: Array<[string, string]> = [
    ['e=invalid-proof', 'server error: invalid-proof'],
    ['', 'malformed server-final-message'],
    [`x=${good}`, 'malformed server-final-message: expected attribute "v"'],
    [`v=${Buffer.from(wrong).toString('base64')}`, 'invalid server signature'],
    [`v=${good.slice(0, 40)}`, 'invalid server signature'],
    ['v=***', 'invalid server signature'],
    [RFC_SERVER_FINAL, 'invalid server signature'], // the RFC's signature is for n=user
  ];
  for (const [input, reason] of cases) {
    const client = new ScramClientExchange('pencil', Buffer.from(RFC_CLIENT_NONCE, 'base64'));
    client.clientFirst();
    client.handleServerFirst(RFC_SERVER_FIRST);
    assert.throws(() => client.verifyServerFinal(input), scramError(reason), input);
  }
});

test('client refuses calls out of order', () => {
  const client = new ScramClientExchange('pw');
  assert.throws(() => client.handleServerFirst(RFC_SERVER_FIRST), scramError('unexpected server-first-message'));
  client.clientFirst();
  assert.throws(() => client.clientFirst(), scramError('clientFirst() called twice'));
});
