import { readFileSync } from 'node:fs';
import { experimental, ServerCredentials } from '@grpc/grpc-js';
import { CpError } from '../errors.js';

export interface TlsFiles {
  cert: string;
  key: string;
  clientCa: string;
}

function read(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new CpError('BAD_FLAGS', `${flag}: cannot read ${JSON.stringify(file)}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Certificates loaded once at start; the provider interface is how grpc-js takes them. Listeners are
 * called on the next tick: grpc-js registers the server's watcher only after adding its listeners, so
 * a synchronous answer would be lost and every connection dropped.
 */
class StaticProvider implements experimental.CertificateProvider {
  constructor(
    private readonly ca: Buffer | null,
    private readonly identity: { certificate: Buffer; privateKey: Buffer } | null,
  ) {}

  addCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    const update = this.ca ? { caCertificate: this.ca } : null;
    setImmediate(() => listener(update));
  }

  removeCaCertificateListener(): void {}

  addIdentityCertificateListener(listener: experimental.IdentityCertificateUpdateListener): void {
    const update = this.identity;
    setImmediate(() => listener(update));
  }

  removeIdentityCertificateListener(): void {}
}

/**
 * TLS that asks every client for a certificate but does not require one: data-plane streams insist on a
 * verified certificate per call, while doormanctl may authenticate with a bearer token instead.
 */
export function serverTlsCredentials(files: TlsFiles): ServerCredentials {
  const cert = read(files.cert, '--tls-cert');
  const key = read(files.key, '--tls-key');
  const ca = read(files.clientCa, '--tls-client-ca');
  const identity = new StaticProvider(null, { certificate: cert, privateKey: key });
  const caProvider = new StaticProvider(ca, null);
  // grpc-js 1.14 names this function's parameters (ca, identity) but passes them on as (identity, ca):
  // the order here is the one that reaches the constructor correctly.
  return experimental.createCertificateProviderServerCredentials(identity, caProvider, false);
}
