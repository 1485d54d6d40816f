import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type net from 'node:net';
import tls from 'node:tls';
import type { SocketReader } from '../session/socket-reader.js';
import { EpollLoop } from './epoll-loop.js';
import { delivered, loopbackPair, received } from './loopback-pair.js';
import { TlsContext, type TlsPeer } from './openssl.js';
import type { RawSocket } from './raw-socket.js';

/** A lost wake-up shows as a failed test, not a hung run. */
const BOUNDED = { timeout: 20_000 };

const loop = EpollLoop.start((err) => {
  throw err;
});
after(() => loop?.close());

/** A self-signed P-256 certificate for localhost, made by the openssl CLI. */
function selfSigned(): { cert: Buffer; key: Buffer } {
  const pem = execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', '-', '-out', '-'],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  ).toString();
  const key = /-----BEGIN PRIVATE KEY-----[^]*?-----END PRIVATE KEY-----\n/.exec(pem)![0];
  const cert = /-----BEGIN CERTIFICATE-----[^]*?-----END CERTIFICATE-----\n/.exec(pem)![0];
  return { cert: Buffer.from(cert), key: Buffer.from(key) };
}

/** A root CA, an intermediate CA it signed, and a leaf for localhost the intermediate signed. */
function chainOfTrust(): { root: Buffer; leaf: Buffer; intermediate: Buffer; key: Buffer } {
  const dir = mkdtempSync(path.join(tmpdir(), 'doorman-chain-'));
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  try {
    writeFileSync(path.join(dir, 'ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n');
    writeFileSync(path.join(dir, 'leaf.ext'), 'subjectAltName=DNS:localhost\n');
    ssl('req', '-x509', ...ec, '-days', '1', '-subj', '/CN=root', '-keyout', 'root.key', '-out', 'root.crt', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
    ssl('req', '-new', ...ec, '-subj', '/CN=intermediate', '-keyout', 'inter.key', '-out', 'inter.csr');
    ssl('x509', '-req', '-in', 'inter.csr', '-CA', 'root.crt', '-CAkey', 'root.key', '-set_serial', '2', '-days', '1', '-extfile', 'ca.ext', '-out', 'inter.crt');
    ssl('req', '-new', ...ec, '-subj', '/CN=localhost', '-keyout', 'leaf.key', '-out', 'leaf.csr');
    ssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'inter.crt', '-CAkey', 'inter.key', '-set_serial', '3', '-days', '1', '-extfile', 'leaf.ext', '-out', 'leaf.crt');
    const read = (f: string): Buffer => readFileSync(path.join(dir, f));
    return { root: read('root.crt'), leaf: read('leaf.crt'), intermediate: read('inter.crt'), key: read('leaf.key') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let pem: { cert: Buffer; key: Buffer };
let context: TlsContext;
before(() => {
  pem = selfSigned();
  context = TlsContext.create(pem.cert, pem.key)!;
});
after(() => context?.free());

interface TlsPair {
  client: tls.TLSSocket;
  /** The TCP socket under `client`. */
  plain: net.Socket;
  raw: RawSocket;
  reader: SocketReader;
  close: () => void;
}

/** A RawSocket that has started TLS, and a Node TLS client on the other end, handshake done. */
async function tlsPair(options: tls.ConnectionOptions = {}): Promise<TlsPair> {
  const { peer, raw, reader, close } = await loopbackPair(loop!);
  raw.startTls(context);
  const client = tls.connect({ socket: peer, ca: pem.cert, servername: 'localhost', ...options });
  await once(client, 'secureConnect');
  return {
    client,
    plain: peer,
    raw,
    reader,
    close: () => {
      client.destroy();
      close();
    },
  };
}

/** Resolves with the arguments of `socket`'s next `event`. */
function raised(socket: RawSocket, event: string): Promise<unknown[]> {
  return new Promise((resolve) => socket.once(event, (...args: unknown[]) => resolve(args)));
}

/** A byte from the client has come through: the server side has finished its handshake too. */
async function handshakeDone(p: TlsPair): Promise<void> {
  const got = delivered(p.reader, 1);
  p.client.write('.');
  await got;
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

test('OpenSSL takes a certificate with its key and names what it refuses', () => {
  const other = selfSigned();
  assert.throws(() => TlsContext.create(pem.cert, other.key), /tls_private_key/);
  assert.throws(() => TlsContext.create(Buffer.from('not a certificate'), pem.key), /tls_certificate/);
  assert.throws(() => TlsContext.create(pem.cert, Buffer.from('not a key')), /tls_private_key/);
});

test('the certificate file may carry its chain: a client trusting only the root accepts the leaf', BOUNDED, async () => {
  const chain = chainOfTrust();
  const outcomes: string[] = [];
  // The leaf alone is the control: without the intermediate the same client must refuse it.
  for (const cert of [Buffer.concat([chain.leaf, chain.intermediate]), chain.leaf]) {
    const ctx = TlsContext.create(cert, chain.key)!;
    const { peer, raw, close } = await loopbackPair(loop!);
    raw.startTls(ctx);
    const client = tls.connect({ socket: peer, ca: chain.root, servername: 'localhost' });
    outcomes.push(
      await new Promise<string>((resolve) => {
        client.once('secureConnect', () => resolve('trusted'));
        client.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      }),
    );
    client.destroy();
    close();
    ctx.free();
  }
  assert.deepEqual(outcomes, ['trusted', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE']);
});

test('after the handshake, plaintext flows both ways (TLS 1.3 and 1.2)', BOUNDED, async () => {
  for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
    const p = await tlsPair({ maxVersion });
    const got = delivered(p.reader, 5);
    p.client.write('hello');
    assert.equal((await got).toString(), 'hello');
    assert.equal(p.client.getProtocol(), maxVersion);
    const back = received(p.client, 5);
    assert.equal(p.raw.write(Buffer.from('xxworldyy').subarray(2, 7)), true);
    assert.equal((await back).toString(), 'world');
    p.close();
  }
});

test('a write larger than the socket takes is queued and arrives whole, in order', BOUNDED, async () => {
  const p = await tlsPair();
  const big = randomBytes(8 * 1024 * 1024);
  p.client.pause();
  assert.equal(p.raw.write(big), false);
  assert.ok(p.raw.writableLength > 0);
  const drained = raised(p.raw, 'drain');
  assert.equal(p.raw.write(Buffer.from('tail')), false);
  const got = received(p.client, big.length + 4);
  p.client.resume();
  await drained;
  assert.equal(sha256(await got), sha256(Buffer.concat([big, Buffer.from('tail')])));
  p.close();
});

test('records OpenSSL read ahead are delivered after a pause, without a new epoll event', BOUNDED, async () => {
  const p = await tlsPair();
  await handshakeDone(p);
  p.raw.pause();
  // Three records in the kernel's buffer before the socket is read: one read takes them all into OpenSSL.
  for (const m of ['one;', 'two;', 'three;']) await new Promise((r) => p.client.write(m, r));
  await new Promise((r) => setTimeout(r, 100));
  let chunks = 0;
  const got = delivered(p.reader, 'one;two;three;'.length, () => p.raw.pause());
  const counted = p.reader.onChunk;
  p.reader.onChunk = (buf, start, end) => {
    chunks++;
    counted(buf, start, end);
  };
  p.raw.resume();
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(chunks, 1, 'paused after the first record');
  p.raw.resume();
  assert.equal((await got).toString(), 'one;two;three;');
  p.close();
});

test('writes made during the handshake go out after it', BOUNDED, async () => {
  const { peer, raw, close } = await loopbackPair(loop!);
  raw.startTls(context);
  assert.equal(raw.write(Buffer.from('early')), false);
  const client = tls.connect({ socket: peer, ca: pem.cert, servername: 'localhost' });
  assert.equal((await received(client, 5)).toString(), 'early');
  client.destroy();
  close();
});

test('end() sends close_notify and a FIN; the client sees the end', BOUNDED, async () => {
  const p = await tlsPair();
  const ended = once(p.client, 'end');
  p.raw.end(Buffer.from('bye'));
  assert.equal((await received(p.client, 3)).toString(), 'bye');
  await ended;
  p.close();
});

test('the client closing ends the stream, with a close_notify or without one', BOUNDED, async () => {
  for (const how of ['close_notify', 'FIN only'] as const) {
    const p = await tlsPair();
    await handshakeDone(p);
    let failed: unknown = null;
    p.raw.on('error', (err: unknown) => (failed = err));
    const ended = raised(p.raw, 'end');
    const closed = raised(p.raw, 'close');
    if (how === 'close_notify') p.client.end();
    else p.plain.end();
    await ended;
    await closed;
    assert.equal(failed, null, how);
    p.close();
  }
});

test('a client that sends no ClientHello fails the handshake with an error, not a crash', BOUNDED, async () => {
  const { peer, raw, close } = await loopbackPair(loop!);
  raw.startTls(context);
  const failed = raised(raw, 'error');
  const closed = raised(raw, 'close');
  peer.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
  const err = (await failed)[0] as NodeJS.ErrnoException;
  assert.equal(err.code, 'ETLS');
  assert.match(err.message, /^TLS handshake: /);
  await closed;
  assert.equal(raw.destroyed, true);
  close();
});

/** The RawSocket as the client (towards PostgreSQL), a Node TLS server on the other end with `cert` and `key`. */
async function serverPair(ctx: TlsContext, peerOptions: TlsPeer, cert = pem.cert, key = pem.key): Promise<{ server: tls.TLSSocket; raw: RawSocket; reader: SocketReader; close: () => void }> {
  const { peer, raw, reader, close } = await loopbackPair(loop!);
  const server = new tls.TLSSocket(peer, { isServer: true, secureContext: tls.createSecureContext({ cert, key }) });
  raw.startTls(ctx, peerOptions);
  return {
    server,
    raw,
    reader,
    close: () => {
      server.destroy();
      close();
    },
  };
}

test('towards a server: written before the handshake ends, plaintext flows both ways, SNI carries the name', BOUNDED, async () => {
  const ctx = TlsContext.createForServers(true, pem.cert)!;
  try {
    const p = await serverPair(ctx, { serverName: 'localhost', checkName: 'localhost' });
    const big = randomBytes(4 * 1024 * 1024);
    // A startup packet goes out before the handshake is done, and must arrive after it.
    assert.equal(p.raw.write(big), false);
    const got = received(p.server as unknown as net.Socket, big.length);
    await once(p.server, 'secure');
    assert.equal((p.server as unknown as { servername: string }).servername, 'localhost');
    assert.equal(sha256(await got), sha256(big));
    const back = delivered(p.reader, big.length);
    p.server.write(big);
    assert.equal(sha256(await back), sha256(big));
    p.close();
  } finally {
    ctx.free();
  }
});

test('towards a server: a certificate that does not verify fails the handshake with the reason, as CERT_VERIFY_FAILED', BOUNDED, async () => {
  const strict = TlsContext.createForServers(true, pem.cert)!;
  const lax = TlsContext.createForServers(false, null)!;
  const other = selfSigned();
  try {
    const cases: [TlsContext, TlsPeer, Buffer, Buffer, RegExp | null][] = [
      [strict, { serverName: null, checkName: null }, other.cert, other.key, /^TLS handshake: certificate verify failed: self-signed certificate$/],
      [strict, { serverName: null, checkName: 'db.example' }, pem.cert, pem.key, /^TLS handshake: certificate verify failed: hostname mismatch \(verifying db\.example\)$/],
      [strict, { serverName: null, checkName: '127.0.0.1' }, pem.cert, pem.key, /^TLS handshake: certificate verify failed: IP address mismatch \(verifying 127\.0\.0\.1\)$/],
      // The controls: the chain alone (verify-ca), and no verification at all (require).
      [strict, { serverName: null, checkName: null }, pem.cert, pem.key, null],
      [lax, { serverName: null, checkName: '127.0.0.1' }, other.cert, other.key, null],
    ];
    for (const [ctx, peer, cert, key, refused] of cases) {
      const p = await serverPair(ctx, peer, cert, key);
      p.server.on('error', () => undefined);
      if (refused === null) {
        const got = delivered(p.reader, 2);
        p.server.write('ok');
        assert.equal((await got).toString(), 'ok');
      } else {
        const err = (await raised(p.raw, 'error'))[0] as NodeJS.ErrnoException;
        assert.equal(err.code, 'CERT_VERIFY_FAILED');
        assert.match(err.message, refused);
      }
      p.close();
    }
  } finally {
    strict.free();
    lax.free();
  }
});

test('towards a server: Node\'s root certificates are the trust anchors without a CA file', () => {
  const ctx = TlsContext.createForServers(true, null);
  assert.ok(ctx);
  ctx.free();
  assert.throws(() => TlsContext.createForServers(true, Buffer.from('not a certificate')), /server_tls_ca_cert/);
});
