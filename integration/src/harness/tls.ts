import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { chownToServiceUser, runChecked } from './processes.js';

export interface TestCerts {
  dir: string;
  /** PEM of the self-signed CA that issued the server certificate. */
  caCert: string;
  caKey: string;
  /** PEM of the server certificate: CN=localhost, SAN DNS:localhost, IP:127.0.0.1. */
  serverCert: string;
  serverKey: string;
}

const OPENSSL = 'openssl';
const DAYS = '3650';

/**
 * Creates a CA and a server certificate for 127.0.0.1/localhost in `dir` with
 * the openssl CLI. Keys are mode 600; when we are root the new files are owned
 * by the postgres OS user (PostgreSQL refuses a key it does not own).
 */
export async function makeTestCerts(dir: string): Promise<TestCerts> {
  const created = await mkdir(dir, { recursive: true });
  const certs: TestCerts = {
    dir,
    caCert: path.join(dir, 'ca.crt'),
    caKey: path.join(dir, 'ca.key'),
    serverCert: path.join(dir, 'server.crt'),
    serverKey: path.join(dir, 'server.key'),
  };
  const csr = path.join(dir, 'server.csr');
  const extensions = path.join(dir, 'server.ext');
  const opts = { cwd: dir, timeoutMs: 30_000 };

  await runChecked(OPENSSL, [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', DAYS,
    '-keyout', certs.caKey, '-out', certs.caCert,
    '-subj', '/CN=Doorman Test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ], opts);

  await runChecked(OPENSSL, [
    'req', '-new', '-newkey', 'rsa:2048', '-nodes', '-sha256',
    '-keyout', certs.serverKey, '-out', csr, '-subj', '/CN=localhost',
  ], opts);

  await writeFile(extensions, [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '',
  ].join('\n'));

  await runChecked(OPENSSL, [
    'x509', '-req', '-in', csr, '-CA', certs.caCert, '-CAkey', certs.caKey,
    // A random serial avoids openssl's serial file next to the CA.
    '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    '-days', DAYS, '-sha256', '-extfile', extensions, '-out', certs.serverCert,
  ], opts);

  await rm(csr, { force: true });
  await rm(extensions, { force: true });
  await chmod(certs.caKey, 0o600);
  await chmod(certs.serverKey, 0o600);
  if (created !== undefined) await chownToServiceUser(created);
  for (const file of [certs.caCert, certs.caKey, certs.serverCert, certs.serverKey]) await chownToServiceUser(file);
  return certs;
}
