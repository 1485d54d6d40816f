import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { createLogger } from './log.js';
import { CpError } from './errors.js';
import { readSecretsKey } from './secrets/key-file.js';
import { SecretsSealer } from './secrets/sealer.js';
import { normalizePrefix } from './store/keys.js';
import { ControlPlane } from './server/app.js';
import { VERSION } from './version.js';

interface Flags {
  etcd: string;
  listen: string;
  advertise?: string;
  prefix: string;
  replicaId?: string;
  leaseTtl: number;
  history: number;
  nodeRetention: number;
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
  adminTokenFile?: string;
  secretsKeyFile?: string;
  insecure: boolean;
  insecureDevSecrets: boolean;
  allowPlaintextSecrets: boolean;
  etcdTimeout: number;
  logLevel: string;
}

function positiveInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} must be a positive integer`);
    return n;
  };
}

function readToken(file: string): string {
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new CpError('BAD_FLAGS', `--admin-token-file: cannot read ${JSON.stringify(file)}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (token.length < 16) throw new CpError('BAD_FLAGS', '--admin-token-file: the token must be at least 16 characters');
  return token;
}

async function main(flags: Flags): Promise<void> {
  const log = createLogger(flags.logLevel);
  const tlsFlags = [flags.tlsCert, flags.tlsKey, flags.tlsClientCa];
  if (!flags.insecure && tlsFlags.some((f) => f === undefined)) {
    throw new CpError('BAD_FLAGS', '--tls-cert, --tls-key and --tls-client-ca are required (or --insecure for plaintext local development)');
  }
  if (flags.insecure && tlsFlags.some((f) => f !== undefined)) {
    throw new CpError('BAD_FLAGS', '--insecure cannot be combined with --tls-cert/--tls-key/--tls-client-ca');
  }
  if (!flags.insecure && flags.adminTokenFile === undefined) {
    log.info('no --admin-token-file: admin calls need a client certificate');
  }
  if (flags.secretsKeyFile === undefined && !flags.insecureDevSecrets) {
    throw new CpError('SECRETS_KEY', '--secrets-key-file is required (32 random bytes, hex or base64: openssl rand -hex 32); --insecure-dev-secrets stores secrets with a fixed dev key');
  }
  if (flags.allowPlaintextSecrets && !flags.insecure) {
    throw new CpError('BAD_FLAGS', '--allow-plaintext-secrets only makes sense with --insecure');
  }
  const sealer = new SecretsSealer(flags.secretsKeyFile !== undefined ? readSecretsKey(flags.secretsKeyFile) : null);
  if (sealer.insecure) log.warn('--insecure-dev-secrets: secrets in etcd are encrypted with a fixed, public key');
  if (flags.insecure) log.warn('--insecure: gRPC without TLS; for local development only');
  if (flags.allowPlaintextSecrets) log.warn('--allow-plaintext-secrets: secrets are pushed to data planes without TLS');

  const app = new ControlPlane(
    {
      etcd: flags.etcd.split(',').map((s) => s.trim()).filter((s) => s !== ''),
      prefix: normalizePrefix(flags.prefix),
      listen: flags.listen,
      advertise: flags.advertise ?? null,
      replicaId: flags.replicaId ?? null,
      leaseTtlSeconds: flags.leaseTtl,
      historyLimit: flags.history,
      nodeRetentionMs: flags.nodeRetention * 1000,
      tls: flags.insecure ? null : { cert: flags.tlsCert as string, key: flags.tlsKey as string, clientCa: flags.tlsClientCa as string },
      adminToken: flags.adminTokenFile !== undefined ? readToken(flags.adminTokenFile) : null,
      sealer,
      allowPlaintextSecrets: flags.allowPlaintextSecrets,
      etcdTimeoutMs: flags.etcdTimeout,
    },
    log,
  );
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    app.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: String(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  await app.start();
}

const program = new Command('doorman-controlplane')
  .description('Doorman control plane: stores versioned pool config and secrets in etcd and feeds data planes over gRPC')
  .version(VERSION)
  .requiredOption('--etcd <endpoints>', 'etcd client endpoints, comma-separated host:port')
  .option('--listen <host:port>', 'gRPC listen address (port 0 = any free port)', '127.0.0.1:7070')
  .option('--advertise <host:port>', 'address other replicas and clients use for this replica (default: the bound address)')
  .option('--prefix <prefix>', 'key prefix in etcd', '/doorman/')
  .option('--replica-id <id>', 'replica name in etcd (default: hostname-pid)')
  .option('--lease-ttl <seconds>', 'lease TTL for leadership and node liveness', positiveInt('--lease-ttl'), 5)
  .option('--history <n>', 'generations kept in history', positiveInt('--history'), 50)
  .option('--node-retention <seconds>', 'records of data planes gone longer than this are deleted', positiveInt('--node-retention'), 86_400)
  .option('--tls-cert <file>', 'server certificate (PEM)')
  .option('--tls-key <file>', 'server private key (PEM)')
  .option('--tls-client-ca <file>', 'CA that issues data-plane and doormanctl client certificates')
  .option('--admin-token-file <file>', 'bearer token for Admin calls')
  .option('--secrets-key-file <file>', '32-byte key (hex or base64) encrypting secrets at rest')
  .option('--insecure', 'plaintext gRPC (local development only)', false)
  .option('--insecure-dev-secrets', 'run without --secrets-key-file (fixed dev key)', false)
  .option('--allow-plaintext-secrets', 'push secrets over --insecure streams (local development only)', false)
  .option('--etcd-timeout <ms>', 'deadline for one etcd request', positiveInt('--etcd-timeout'), 3_000)
  .option('--log-level <level>', 'trace | debug | info | warn | error', 'info')
  .action(async (flags: Flags) => {
    try {
      await main(flags);
    } catch (err) {
      const cp = err instanceof CpError ? err : null;
      process.stderr.write(`doorman-controlplane: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(cp ? cp.kind.exit : 1);
    }
  });

await program.parseAsync(process.argv);
