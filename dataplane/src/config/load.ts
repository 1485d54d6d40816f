/**
 * Loads a config file and checks what the shared schema cannot: pg_hba rules, stored password formats and
 * TLS files. Every problem is reported with its field path, all at once.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, loadConfigFile, type ConfigIssue, type DoormanConfig, type WarningHandler } from '@doorman/proto';
import { HbaError, parseHba, type HbaRule } from '../auth/hba.js';
import { parseStoredPassword } from '../auth/stored-password.js';

export interface LoadedConfig {
  config: DoormanConfig;
  hba: HbaRule[] | null;
  tls: { cert: Buffer; key: Buffer } | null;
  serverCa: Buffer | null;
}

function readOrIssue(path: string, field: string, issues: ConfigIssue[]): Buffer | null {
  try {
    return readFileSync(path);
  } catch (err) {
    issues.push({ path: field, message: `cannot read "${path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
    return null;
  }
}

export function validateLoaded(config: DoormanConfig): LoadedConfig {
  const issues: ConfigIssue[] = [];
  const g = config.general;
  let hba: HbaRule[] | null = null;
  if (g.pgHba !== null) {
    try {
      hba = parseHba(g.pgHba, g.pgHbaSource ?? 'general.pg_hba');
    } catch (err) {
      if (!(err instanceof HbaError)) throw err;
      issues.push({ path: 'general.pg_hba', message: err.message });
    }
  }
  for (const pool of Object.values(config.pools)) {
    pool.users.forEach((u, i) => {
      try {
        parseStoredPassword(u.password);
      } catch (err) {
        issues.push({ path: `pools.${pool.name}.users[${i}].password`, message: (err as Error).message });
      }
    });
  }
  let tls: LoadedConfig['tls'] = null;
  if (g.tlsCertificate !== null && g.tlsPrivateKey !== null) {
    const cert = readOrIssue(g.tlsCertificate, 'general.tls_certificate', issues);
    const key = readOrIssue(g.tlsPrivateKey, 'general.tls_private_key', issues);
    if (cert !== null && key !== null) tls = { cert, key };
  }
  const serverCa = g.serverTlsCaCert === null ? null : readOrIssue(g.serverTlsCaCert, 'general.server_tls_ca_cert', issues);
  if (issues.length > 0) throw new ConfigError(issues);
  return { config, hba, tls, serverCa };
}

export function loadConfig(path: string, onWarning?: WarningHandler): LoadedConfig {
  return validateLoaded(loadConfigFile(path, onWarning));
}
