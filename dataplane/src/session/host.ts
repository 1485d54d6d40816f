import type { SecureContext } from 'node:tls';
import type { GeneralConfig } from '@doorman/proto';
import type { Logger } from 'pino';
import type { AdminView } from '../admin/console.js';
import type { HbaRule } from '../auth/hba.js';
import type { Pool } from '../pool/pool.js';
import type { EpollLoop } from '../io/epoll-loop.js';
import type { TlsContext } from '../io/openssl.js';
import type { ClientConnection } from './client.js';
import type { ServerConnection } from './server.js';
import type { ClientCredentials, UserCredentials } from './credentials.js';

/** What client and server connections need from the process around them. */
export interface SessionHost {
  /** The shard's own loop for plain sockets; null: Node's sockets throughout. */
  readonly io: EpollLoop | null;
  readonly now: number;
  readonly general: GeneralConfig;
  readonly log: Logger;
  /** TLS towards clients; null when no certificate is configured. */
  readonly clientTls: SecureContext | null;
  /** The same through OpenSSL on the shard's loop; null: clients on a RawSocket move to Node's TLSSocket. */
  readonly clientSsl: TlsContext | null;
  /** CA bundle for verify-ca / verify-full towards PostgreSQL. */
  readonly serverCa: Buffer | null;
  /** OpenSSL context for TLS to PostgreSQL (`verify`: verify-ca / verify-full); null: Node's TLSSocket. */
  serverSsl(verify: boolean): TlsContext | null;
  readonly hba: HbaRule[] | null;
  readonly shuttingDown: boolean;
  /** Clients connected now, this one included. */
  readonly clientCount: number;
  /** The pool for (database, user): undefined user = database unknown; null = database known, user not. */
  findPool(database: string, user: string): Pool | null | undefined;
  credentials(pool: Pool): UserCredentials;
  /** What clients of the admin console (databases `doorman`, `pgbouncer`) see and control, over every shard; `query` is the command about to run. */
  adminView(query: string): Promise<AdminView>;
  /** Admin DISABLE: new logins to the database are refused. */
  isDisabled(database: string): boolean;
  /** general.admin_password decoded; null when empty (then only an hba `trust` rule admits the admin). */
  adminCredentials(): ClientCredentials | null;
  /** Assigns a synthetic BackendKeyData and makes the client reachable by CancelRequest. */
  registerCancelKey(c: ClientConnection): void;
  cancel(processId: number, secretKey: number): void;
  clientLoggedIn(c: ClientConnection): void;
  clientClosed(c: ClientConnection): void;
  serverClosed(s: ServerConnection): void;
}
