/**
 * `doormanctl certs init`: a development PKI made with the openssl CLI. One CA; a server certificate for
 * the control plane (localhost, 127.0.0.1 and any extra names); client certificates for the data planes
 * and for doormanctl. Keys are written 0600. Not for production: the CA key sits next to what it signed.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CliError, EXIT } from './exit-codes.js';

export interface CertsInitOptions {
  dir: string;
  days: number;
  /** Extra subjectAltName entries for the server certificate, e.g. DNS:cp.example or IP:10.0.0.5. */
  serverNames: string[];
  force: boolean;
}

export interface IssuedFile {
  role: string;
  cert: string;
  key: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new CliError(EXIT.SERVER, `openssl ${args[0]} failed: ${e.stderr?.toString().trim() || e.message}`);
  }
}

function issue(dir: string, name: string, subject: string, extensions: string[], days: number): IssuedFile {
  const out = { role: name, cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  try {
    openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-keyout', out.key, '-out', csr, '-subj', subject], dir);
    chmodSync(out.key, 0o600);
    writeFileSync(ext, extensions.join('\n') + '\n');
    openssl([
      'x509', '-req', '-in', csr, '-CA', 'ca.crt', '-CAkey', 'ca.key',
      // A random serial: no serial file to keep beside the CA.
      '-set_serial', `0x${randomBytes(8).toString('hex')}`,
      '-days', String(days), '-sha256', '-extfile', ext, '-out', out.cert,
    ], dir);
  } finally {
    rmSync(csr, { force: true });
    rmSync(ext, { force: true });
  }
  return out;
}

/** The files written, CA first. */
export function certsInit(opts: CertsInitOptions): IssuedFile[] {
  const dir = path.resolve(opts.dir);
  const names = ['ca', 'server', 'dataplane', 'doormanctl'];
  const existing = names.flatMap((n) => [`${n}.crt`, `${n}.key`]).filter((f) => existsSync(path.join(dir, f)));
  if (existing.length > 0 && !opts.force) {
    throw new CliError(EXIT.INVALID, `${dir} already holds ${existing.join(', ')}; use --force to replace them`);
  }
  for (const n of opts.serverNames) {
    if (!/^(DNS|IP):[A-Za-z0-9.:*-]+$/.test(n)) throw new CliError(EXIT.INVALID, `--san: "${n}" is not DNS:name or IP:address`);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });

  openssl([
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', String(opts.days),
    '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=Doorman development CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ], dir);
  chmodSync(path.join(dir, 'ca.key'), 0o600);
  const ca = { role: 'ca', cert: path.join(dir, 'ca.crt'), key: path.join(dir, 'ca.key') };

  const leaf = ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment'];
  const san = ['DNS:localhost', 'IP:127.0.0.1', ...opts.serverNames].join(',');
  const server = issue(dir, 'server', '/CN=doorman-controlplane', [...leaf, 'extendedKeyUsage=serverAuth', `subjectAltName=${san}`], opts.days);
  const dataplane = issue(dir, 'dataplane', '/CN=doorman-dataplane', [...leaf, 'extendedKeyUsage=clientAuth'], opts.days);
  const ctl = issue(dir, 'doormanctl', '/CN=doormanctl', [...leaf, 'extendedKeyUsage=clientAuth'], opts.days);
  return [ca, server, dataplane, ctl];
}
