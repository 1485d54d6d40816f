/** What `Get` shows: documents and lists with every secret replaced by "[set]" or "[unset]". */
import { mergeSecrets, type Doc, type SecretSet } from '../secrets/split.js';
import { validate } from './document.js';

const marker = (v: string): string => (v === '' ? '[unset]' : '[set]');

export function configView(document: Doc, secrets: SecretSet): Doc {
  return mergeSecrets(document, secrets, marker);
}

export interface PoolRow {
  name: string;
  server_host: string;
  server_port: number;
  server_database: string;
  pool_mode: string;
  server_tls_mode: string;
  users: number;
}

export interface UserRow {
  database: string;
  username: string;
  pool_mode: string;
  pool_size: number;
  min_pool_size: number;
  reserve_pool_size: number;
  server_username: string;
  password: string;
  server_password: string;
}

/** Pools with defaults filled in (the effective config the data planes will run). */
export function poolRows(document: Doc, secrets: SecretSet): PoolRow[] {
  const { config } = validate(mergeSecrets(document, secrets), 'stored generation');
  return Object.values(config.pools)
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((p) => ({
      name: p.name,
      server_host: p.serverHost,
      server_port: p.serverPort,
      server_database: p.serverDatabase,
      pool_mode: p.poolMode,
      server_tls_mode: p.serverTlsMode,
      users: p.users.length,
    }));
}

export function userRows(document: Doc, secrets: SecretSet): UserRow[] {
  const { config } = validate(mergeSecrets(document, secrets), 'stored generation');
  const rows: UserRow[] = [];
  for (const p of Object.values(config.pools).sort((a, b) => a.name.localeCompare(b.name))) {
    for (const u of [...p.users].sort((a, b) => a.username.localeCompare(b.username))) {
      const s = secrets.users[p.name]?.[u.username];
      rows.push({
        database: p.name,
        username: u.username,
        pool_mode: u.poolMode,
        pool_size: u.poolSize,
        min_pool_size: u.minPoolSize,
        reserve_pool_size: u.reservePoolSize,
        server_username: u.serverUsername,
        password: marker(s?.password ?? ''),
        server_password: marker(s?.serverPassword ?? ''),
      });
    }
  }
  return rows;
}
