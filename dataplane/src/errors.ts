/**
 * The data plane's error catalogue: every error Doorman itself reports to a client has a stable code here,
 * mapped to the SQLSTATE and severity a PostgreSQL client expects. Messages follow PostgreSQL's wording where
 * PostgreSQL has the same situation, so drivers and operators recognise them.
 */

export interface ErrorDef {
  /** Stable Doorman code, for logs and tests. */
  readonly code: string;
  readonly sqlstate: string;
  readonly severity: 'ERROR' | 'FATAL';
}

function def(code: string, sqlstate: string, severity: 'ERROR' | 'FATAL'): ErrorDef {
  return { code, sqlstate, severity };
}

export const E = {
  protocolViolation: def('DM_PROTOCOL_VIOLATION', '08P01', 'FATAL'),
  unsupportedProtocol: def('DM_UNSUPPORTED_PROTOCOL', '08P01', 'FATAL'),
  messageTooLarge: def('DM_MESSAGE_TOO_LARGE', '08P01', 'FATAL'),
  tlsRequired: def('DM_TLS_REQUIRED', '28000', 'FATAL'),
  hbaNoEntry: def('DM_HBA_NO_ENTRY', '28000', 'FATAL'),
  hbaReject: def('DM_HBA_REJECT', '28000', 'FATAL'),
  authFailed: def('DM_AUTH_FAILED', '28P01', 'FATAL'),
  noSuchDatabase: def('DM_NO_SUCH_DATABASE', '3D000', 'FATAL'),
  tooManyClients: def('DM_TOO_MANY_CLIENTS', '53300', 'FATAL'),
  queryWaitTimeout: def('DM_QUERY_WAIT_TIMEOUT', '53300', 'FATAL'),
  poolDraining: def('DM_POOL_DRAINING', '57P01', 'FATAL'),
  serverLoginFailed: def('DM_SERVER_LOGIN_FAILED', '08006', 'FATAL'),
  serverGone: def('DM_SERVER_GONE', '08006', 'FATAL'),
  adminShutdown: def('DM_ADMIN_SHUTDOWN', '57P01', 'FATAL'),
  /** A defect in Doorman met by one client: that client is closed, the others carry on. */
  internal: def('DM_INTERNAL', 'XX000', 'FATAL'),
  replicationUnsupported: def('DM_REPLICATION', '08P01', 'FATAL'),
  databaseDisabled: def('DM_DATABASE_DISABLED', '55000', 'FATAL'),
  adminKill: def('DM_ADMIN_KILL', '57P01', 'FATAL'),
  /** A CancelRequest for a query that was still waiting for a server (the session stays open). */
  queryCanceled: def('DM_QUERY_CANCELED', '57014', 'ERROR'),
  // Admin console answers (the session stays open).
  adminSyntax: def('DM_ADMIN_SYNTAX', '42601', 'ERROR'),
  adminNoDatabase: def('DM_ADMIN_NO_DATABASE', '3D000', 'ERROR'),
  adminNoClient: def('DM_ADMIN_NO_CLIENT', '42704', 'ERROR'),
  adminBadValue: def('DM_ADMIN_BAD_VALUE', '22023', 'ERROR'),
} as const;

/** An error raised inside the data plane that should reach the client as an ErrorResponse. */
export class DoormanError extends Error {
  constructor(
    readonly def: ErrorDef,
    message: string,
    readonly detail?: string,
  ) {
    super(message);
  }
}
