/**
 * The OpenSSL calls a shard makes for its TLS connections, to clients and to PostgreSQL, through koffi, into
 * the OpenSSL that Node itself is built with (Node exports its symbols for addons). A TLS client on Node's
 * TLSSocket cost 36 µs of CPU per transaction at pgbench -c 100 against PgBouncer's 26: the stream
 * machinery around each record, not the cipher. Driving the library the way PgBouncer does (SSL_read and
 * SSL_write on the socket itself) keeps TLS connections on the shard's own epoll loop.
 *
 * Pointers cross as plain numbers (intptr_t): user-space addresses fit in a double exactly.
 */
import koffi from 'koffi';
import { DEFAULT_CIPHERS, rootCertificates } from 'node:tls';
import { isIP } from 'node:net';
import type { Fn } from './libc.js';

export const SSL_ERROR_SSL = 1;
export const SSL_ERROR_WANT_READ = 2;
export const SSL_ERROR_WANT_WRITE = 3;
export const SSL_ERROR_SYSCALL = 5;
export const SSL_ERROR_ZERO_RETURN = 6;

const SSL_CTRL_MODE = 33;
const SSL_CTRL_SET_READ_AHEAD = 41;
const SSL_CTRL_CHAIN_CERT = 89;
const SSL_CTRL_SET_MIN_PROTO_VERSION = 123;
const SSL_CTRL_SET_TLSEXT_HOSTNAME = 55;
const TLSEXT_NAMETYPE_HOST_NAME = 0;
const SSL_VERIFY_NONE = 0;
const SSL_VERIFY_PEER = 1;
const X509_V_OK = 0;
const SSL_MODE_ENABLE_PARTIAL_WRITE = 0x1;
const SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER = 0x2;
const SSL_MODE_RELEASE_BUFFERS = 0x10;
const TLS1_2_VERSION = 0x0303;
const SSL_OP_IGNORE_UNEXPECTED_EOF = 1n << 7n;
const SSL_OP_NO_TICKET = 1n << 14n;
const SSL_OP_NO_COMPRESSION = 1n << 17n;
const SSL_OP_NO_RENEGOTIATION = 1n << 30n;
const OPENSSL_3 = 0x30000000;

interface Library {
  serverMethod: Fn<[], number>;
  clientMethod: Fn<[], number>;
  ctxNew: Fn<[number], number>;
  ctxFree: Fn<[number], void>;
  ctxCtrl: Fn<[number, number, number, number], number>;
  ctxSetOptions: Fn<[number, bigint], bigint>;
  ctxSetCipherList: Fn<[number, string], number>;
  ctxSetCiphersuites: Fn<[number, string], number>;
  ctxSetNumTickets: Fn<[number, number], number>;
  ctxUseCertificate: Fn<[number, number], number>;
  ctxUsePrivateKey: Fn<[number, number], number>;
  ctxCheckPrivateKey: Fn<[number], number>;
  ctxSetVerify: Fn<[number, number, null], void>;
  ctxGetCertStore: Fn<[number], number>;
  storeAddCert: Fn<[number, number], number>;
  bioNewMemBuf: Fn<[Buffer, number], number>;
  bioFree: Fn<[number], number>;
  pemReadX509: Fn<[number, null, null, null], number>;
  pemReadPrivateKey: Fn<[number, null, null, null], number>;
  x509Free: Fn<[number], void>;
  pkeyFree: Fn<[number], void>;
  sslNew: Fn<[number], number>;
  sslFree: Fn<[number], void>;
  sslSetFd: Fn<[number, number], number>;
  sslAccept: Fn<[number], number>;
  sslConnect: Fn<[number], number>;
  sslCtrlString: Fn<[number, number, number, string], number>;
  sslSet1Host: Fn<[number, string], number>;
  sslGet0Param: Fn<[number], number>;
  paramSet1IpAsc: Fn<[number, string], number>;
  sslGetVerifyResult: Fn<[number], number>;
  sslGetVersion: Fn<[number], string>;
  sslGetCurrentCipher: Fn<[number], number>;
  cipherGetName: Fn<[number], string>;
  verifyErrorString: Fn<[number], string>;
  sslReadAt: Fn<[number, number, number], number>;
  sslWriteAt: Fn<[number, number, number], number>;
  sslWrite: Fn<[number, Buffer, number], number>;
  sslGetError: Fn<[number, number], number>;
  sslHasPending: Fn<[number], number>;
  sslShutdown: Fn<[number], number>;
  errClear: Fn<[], void>;
  errGet: Fn<[], number>;
  errString: Fn<[number, Buffer, number], void>;
}

function bind(): Library | null {
  try {
    const self = koffi.load(null);
    const version = self.func('unsigned long OpenSSL_version_num()') as Fn<[], number>;
    if (version() < OPENSSL_3) return null;
    return {
      serverMethod: self.func('intptr_t TLS_server_method()'),
      clientMethod: self.func('intptr_t TLS_client_method()'),
      ctxNew: self.func('intptr_t SSL_CTX_new(intptr_t)'),
      ctxFree: self.func('void SSL_CTX_free(intptr_t)'),
      ctxCtrl: self.func('long SSL_CTX_ctrl(intptr_t, int, long, intptr_t)'),
      ctxSetOptions: self.func('uint64_t SSL_CTX_set_options(intptr_t, uint64_t)'),
      ctxSetCipherList: self.func('int SSL_CTX_set_cipher_list(intptr_t, const char *)'),
      ctxSetCiphersuites: self.func('int SSL_CTX_set_ciphersuites(intptr_t, const char *)'),
      ctxSetNumTickets: self.func('int SSL_CTX_set_num_tickets(intptr_t, size_t)'),
      ctxUseCertificate: self.func('int SSL_CTX_use_certificate(intptr_t, intptr_t)'),
      ctxUsePrivateKey: self.func('int SSL_CTX_use_PrivateKey(intptr_t, intptr_t)'),
      ctxCheckPrivateKey: self.func('int SSL_CTX_check_private_key(intptr_t)'),
      ctxSetVerify: self.func('void SSL_CTX_set_verify(intptr_t, int, void *)'),
      ctxGetCertStore: self.func('intptr_t SSL_CTX_get_cert_store(intptr_t)'),
      storeAddCert: self.func('int X509_STORE_add_cert(intptr_t, intptr_t)'),
      bioNewMemBuf: self.func('intptr_t BIO_new_mem_buf(const void *, int)'),
      bioFree: self.func('int BIO_free(intptr_t)'),
      pemReadX509: self.func('intptr_t PEM_read_bio_X509(intptr_t, void *, void *, void *)'),
      pemReadPrivateKey: self.func('intptr_t PEM_read_bio_PrivateKey(intptr_t, void *, void *, void *)'),
      x509Free: self.func('void X509_free(intptr_t)'),
      pkeyFree: self.func('void EVP_PKEY_free(intptr_t)'),
      sslNew: self.func('intptr_t SSL_new(intptr_t)'),
      sslFree: self.func('void SSL_free(intptr_t)'),
      sslSetFd: self.func('int SSL_set_fd(intptr_t, int)'),
      sslAccept: self.func('int SSL_accept(intptr_t)'),
      sslConnect: self.func('int SSL_connect(intptr_t)'),
      sslCtrlString: self.func('long SSL_ctrl(intptr_t, int, long, const char *)'),
      sslSet1Host: self.func('int SSL_set1_host(intptr_t, const char *)'),
      sslGet0Param: self.func('intptr_t SSL_get0_param(intptr_t)'),
      paramSet1IpAsc: self.func('int X509_VERIFY_PARAM_set1_ip_asc(intptr_t, const char *)'),
      sslGetVerifyResult: self.func('long SSL_get_verify_result(intptr_t)'),
      sslGetVersion: self.func('const char *SSL_get_version(intptr_t)'),
      sslGetCurrentCipher: self.func('intptr_t SSL_get_current_cipher(intptr_t)'),
      cipherGetName: self.func('const char *SSL_CIPHER_get_name(intptr_t)'),
      verifyErrorString: self.func('const char *X509_verify_cert_error_string(long)'),
      sslReadAt: self.func('int SSL_read(intptr_t, intptr_t, int)'),
      sslWriteAt: self.func('int SSL_write(intptr_t, intptr_t, int)'),
      sslWrite: self.func('int SSL_write(intptr_t, const void *, int)'),
      sslGetError: self.func('int SSL_get_error(intptr_t, int)'),
      sslHasPending: self.func('int SSL_has_pending(intptr_t)'),
      sslShutdown: self.func('int SSL_shutdown(intptr_t)'),
      errClear: self.func('void ERR_clear_error()'),
      errGet: self.func('unsigned long ERR_get_error()'),
      errString: self.func('void ERR_error_string_n(unsigned long, void *, size_t)'),
    };
  } catch {
    return null;
  }
}

let lib: Library | null | undefined;

/** The bindings, or null where Node's OpenSSL cannot be reached (then TLS stays on Node's TLSSocket). */
function library(): Library | null {
  if (lib === undefined) lib = bind();
  return lib;
}

const errorText = Buffer.alloc(256);

/** The oldest error on this thread's OpenSSL queue, as text; the queue is left empty for the next call. */
export function takeError(fallback: string): string {
  const l = library()!;
  const code = l.errGet();
  let text = fallback;
  if (code !== 0) {
    errorText.fill(0);
    l.errString(code, errorText, errorText.length);
    const end = errorText.indexOf(0);
    text = errorText.toString('latin1', 0, end < 0 ? errorText.length : end);
  }
  l.errClear();
  return text;
}

/**
 * An SSL_CTX set up as Node's default secure context is: TLS 1.2 and later, Node's default cipher list.
 * No session tickets: PostgreSQL clients do not resume sessions, and each ticket is a record written at
 * every login.
 */
export class TlsContext {
  private constructor(
    readonly pointer: number,
    /** Connections made from it start the handshake (towards PostgreSQL). */
    readonly client: boolean,
    /** The peer's certificate must verify. */
    readonly verifies: boolean,
  ) {}

  /** For TLS clients: null where OpenSSL cannot be reached; throws for a certificate or key OpenSSL refuses. */
  static create(certPem: Buffer, keyPem: Buffer): TlsContext | null {
    return TlsContext.make(false, false, (l, ctx) => {
      useCertificateChain(l, ctx, certPem);
      usePrivateKey(l, ctx, keyPem);
    });
  }

  /**
   * For connections to PostgreSQL. `verify`: the server's chain must lead to `caPem` (to Node's bundled
   * root certificates without one), as Node's `rejectUnauthorized` does; the name is checked per connection.
   * null where OpenSSL cannot be reached; throws for a CA file OpenSSL refuses.
   */
  static createForServers(verify: boolean, caPem: Buffer | null): TlsContext | null {
    return TlsContext.make(true, verify, (l, ctx) => {
      l.ctxSetVerify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, null);
      if (verify) trust(l, ctx, caPem ?? Buffer.from(rootCertificates.join('\n')));
    });
  }

  private static make(client: boolean, verifies: boolean, configure: (l: Library, ctx: number) => void): TlsContext | null {
    const l = library();
    if (l === null) return null;
    l.errClear();
    const ctx = l.ctxNew(client ? l.clientMethod() : l.serverMethod());
    if (ctx === 0) throw new Error(`SSL_CTX_new: ${takeError('failed')}`);
    try {
      const suites = DEFAULT_CIPHERS.split(':');
      const ok =
        l.ctxCtrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, 0) === 1 &&
        l.ctxSetCipherList(ctx, suites.filter((s) => !s.startsWith('TLS_')).join(':')) === 1 &&
        l.ctxSetCiphersuites(ctx, suites.filter((s) => s.startsWith('TLS_')).join(':')) === 1 &&
        l.ctxSetNumTickets(ctx, 0) === 1;
      if (!ok) throw new Error(`TLS settings: ${takeError('refused')}`);
      // Most drivers close without a close_notify after Terminate: that is the end of the stream, not an error.
      l.ctxSetOptions(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
      // Released buffers: an idle client holds no 34 KB of record buffers (no CPU cost measured at -c 10 to 500).
      // Server connections are few and busy: there they would be freed and allocated again at every record.
      l.ctxCtrl(ctx, SSL_CTRL_MODE, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | (client ? 0 : SSL_MODE_RELEASE_BUFFERS), 0);
      // Reads take whatever the socket holds, not a record header and then its body: one recv per event.
      l.ctxCtrl(ctx, SSL_CTRL_SET_READ_AHEAD, 1, 0);
      configure(l, ctx);
      return new TlsContext(ctx, client, verifies);
    } catch (err) {
      l.ctxFree(ctx);
      throw err;
    }
  }

  /** Connections made from it keep it alive (OpenSSL counts references). */
  free(): void {
    library()!.ctxFree(this.pointer);
  }
}

function withBio<T>(l: Library, pem: Buffer, use: (bio: number) => T): T {
  const bio = l.bioNewMemBuf(pem, pem.length);
  if (bio === 0) throw new Error(`BIO_new_mem_buf: ${takeError('failed')}`);
  try {
    return use(bio);
  } finally {
    l.bioFree(bio);
  }
}

function useCertificateChain(l: Library, ctx: number, pem: Buffer): void {
  withBio(l, pem, (bio) => {
    const leaf = l.pemReadX509(bio, null, null, null);
    if (leaf === 0) throw new Error(`tls_certificate: ${takeError('no certificate')}`);
    const used = l.ctxUseCertificate(ctx, leaf);
    l.x509Free(leaf);
    if (used !== 1) throw new Error(`tls_certificate: ${takeError('refused')}`);
    for (;;) {
      const extra = l.pemReadX509(bio, null, null, null);
      // The end of the PEM text leaves a "no start line" error on the queue.
      if (extra === 0) break;
      if (l.ctxCtrl(ctx, SSL_CTRL_CHAIN_CERT, 0, extra) !== 1) {
        l.x509Free(extra);
        throw new Error(`tls_certificate chain: ${takeError('refused')}`);
      }
    }
    l.errClear();
  });
}

/** Every certificate in `pem` becomes a trust anchor of the context. */
function trust(l: Library, ctx: number, pem: Buffer): void {
  const store = l.ctxGetCertStore(ctx);
  let added = 0;
  withBio(l, pem, (bio) => {
    for (;;) {
      const cert = l.pemReadX509(bio, null, null, null);
      if (cert === 0) break;
      const ok = l.storeAddCert(store, cert);
      l.x509Free(cert);
      if (ok !== 1) throw new Error(`server_tls_ca_cert: ${takeError('refused')}`);
      added++;
    }
  });
  if (added === 0) throw new Error(`server_tls_ca_cert: ${takeError('no certificate')}`);
  l.errClear();
}

function usePrivateKey(l: Library, ctx: number, pem: Buffer): void {
  withBio(l, pem, (bio) => {
    const key = l.pemReadPrivateKey(bio, null, null, null);
    if (key === 0) throw new Error(`tls_private_key: ${takeError('no private key')}`);
    const used = l.ctxUsePrivateKey(ctx, key);
    l.pkeyFree(key);
    if (used !== 1 || l.ctxCheckPrivateKey(ctx) !== 1) throw new Error(`tls_private_key: ${takeError('does not match the certificate')}`);
  });
}

/**
 * Whom a connection to a server expects: `serverName` goes out as SNI (a host name, never an address);
 * `checkName`, a host name or an IP address, must match the certificate (verify-full).
 */
export interface TlsPeer {
  serverName: string | null;
  checkName: string | null;
}

/** One TLS connection on a descriptor the caller owns (SSL_free leaves it open). */
export class TlsConnection {
  private readonly l: Library;
  readonly ssl: number;
  readonly client: boolean;
  readonly verifies: boolean;
  /** The name the certificate must match, if any. */
  readonly checkName: string | null;

  constructor(context: TlsContext, fd: number, peer: TlsPeer | null = null) {
    const l = library()!;
    this.l = l;
    this.client = context.client;
    this.verifies = context.verifies;
    const ssl = l.sslNew(context.pointer);
    if (ssl === 0) throw new Error(`SSL_new: ${takeError('failed')}`);
    this.ssl = ssl;
    try {
      if (l.sslSetFd(ssl, fd) !== 1) throw new Error(`SSL_set_fd: ${takeError('failed')}`);
      if (peer?.serverName != null && l.sslCtrlString(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_HOST_NAME, peer.serverName) !== 1) {
        throw new Error(`server name ${peer.serverName}: ${takeError('refused')}`);
      }
      const name = peer?.checkName ?? null;
      this.checkName = name;
      if (name !== null) {
        const ok = isIP(name) !== 0 ? l.paramSet1IpAsc(l.sslGet0Param(ssl), name) : l.sslSet1Host(ssl, name);
        if (ok !== 1) throw new Error(`name to verify ${name}: ${takeError('refused')}`);
      }
    } catch (err) {
      l.sslFree(ssl);
      throw err;
    }
  }

  /** Moves the handshake on: 1 when it is done; otherwise see errorOf(). */
  handshake(): number {
    return this.client ? this.l.sslConnect(this.ssl) : this.l.sslAccept(this.ssl);
  }

  /** Why the peer's certificate was refused (OpenSSL's words, and the name checked), or null if it was not. */
  verifyError(): string | null {
    const result = this.l.sslGetVerifyResult(this.ssl);
    if (result === X509_V_OK) return null;
    const why = this.l.verifyErrorString(result);
    return this.checkName === null ? why : `${why} (verifying ${this.checkName})`;
  }

  /** "TLSv1.3/TLS_AES_256_GCM_SHA384": the protocol and cipher, as PgBouncer's SHOW CLIENTS shows them. */
  describe(): string {
    const cipher = this.l.sslGetCurrentCipher(this.ssl);
    return cipher === 0 ? '' : `${this.l.sslGetVersion(this.ssl)}/${this.l.cipherGetName(cipher)}`;
  }

  /** Plaintext into memory at `address`: bytes read, or <= 0 (see errorOf()). */
  readAt(address: number, length: number): number {
    return this.l.sslReadAt(this.ssl, address, length);
  }

  writeAt(address: number, length: number): number {
    return this.l.sslWriteAt(this.ssl, address, length);
  }

  write(buf: Buffer, length: number): number {
    return this.l.sslWrite(this.ssl, buf, length);
  }

  /** SSL_get_error for a call that returned `result`. */
  errorOf(result: number): number {
    return this.l.sslGetError(this.ssl, result);
  }

  /** Decrypted or undecrypted bytes OpenSSL holds that the socket will not report again. */
  hasPending(): boolean {
    return this.l.sslHasPending(this.ssl) === 1;
  }

  /** Empties this thread's error queue, which Node's own TLS connections on the thread share. */
  clearErrors(): void {
    this.l.errClear();
  }

  /** Sends close_notify, without waiting for the peer's. */
  shutdown(): void {
    this.l.sslShutdown(this.ssl);
    this.l.errClear();
  }

  free(): void {
    this.l.sslFree(this.ssl);
  }
}
