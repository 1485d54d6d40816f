/**
 * The control plane's error catalogue: every failure a caller can see has a stable code, a gRPC status
 * and a CLI exit code. Foreign errors (etcd, grpc) become CpErrors at the boundary.
 */
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';

export interface ErrorKind {
  readonly code: string;
  readonly grpc: status;
  /** Exit code of doorman-controlplane when this stops start-up. */
  readonly exit: number;
}

export const ERRORS = {
  INVALID_CONFIG: { code: 'DOORMAN_CP_INVALID_CONFIG', grpc: status.INVALID_ARGUMENT, exit: 2 },
  INVALID_REQUEST: { code: 'DOORMAN_CP_INVALID_REQUEST', grpc: status.INVALID_ARGUMENT, exit: 2 },
  CONFLICT: { code: 'DOORMAN_CP_CONFLICT', grpc: status.ABORTED, exit: 1 },
  NOT_LEADER: { code: 'DOORMAN_CP_NOT_LEADER', grpc: status.FAILED_PRECONDITION, exit: 1 },
  NO_LEADER: { code: 'DOORMAN_CP_NO_LEADER', grpc: status.UNAVAILABLE, exit: 1 },
  STORE_UNAVAILABLE: { code: 'DOORMAN_CP_STORE_UNAVAILABLE', grpc: status.UNAVAILABLE, exit: 1 },
  NOT_FOUND: { code: 'DOORMAN_CP_NOT_FOUND', grpc: status.NOT_FOUND, exit: 1 },
  UNAUTHENTICATED: { code: 'DOORMAN_CP_UNAUTHENTICATED', grpc: status.UNAUTHENTICATED, exit: 1 },
  PERMISSION_DENIED: { code: 'DOORMAN_CP_PERMISSION_DENIED', grpc: status.PERMISSION_DENIED, exit: 1 },
  BAD_FLAGS: { code: 'DOORMAN_CP_BAD_FLAGS', grpc: status.INVALID_ARGUMENT, exit: 2 },
  SECRETS_KEY: { code: 'DOORMAN_CP_SECRETS_KEY', grpc: status.INTERNAL, exit: 2 },
  SECRETS_CORRUPT: { code: 'DOORMAN_CP_SECRETS_CORRUPT', grpc: status.DATA_LOSS, exit: 1 },
  SHUTTING_DOWN: { code: 'DOORMAN_CP_SHUTTING_DOWN', grpc: status.UNAVAILABLE, exit: 1 },
  INTERNAL: { code: 'DOORMAN_CP_INTERNAL', grpc: status.INTERNAL, exit: 1 },
} as const satisfies Record<string, ErrorKind>;

export type ErrorName = keyof typeof ERRORS;

export class CpError extends Error {
  readonly kind: ErrorKind;
  /** Extra machine-readable detail (e.g. the leader's address), sent as gRPC metadata. */
  readonly meta: Readonly<Record<string, string>>;

  constructor(name: ErrorName, message: string, meta: Record<string, string> = {}) {
    super(message);
    this.name = 'CpError';
    this.kind = ERRORS[name];
    this.meta = meta;
  }

  get code(): string {
    return this.kind.code;
  }
}

export function isCpError(err: unknown, name?: ErrorName): err is CpError {
  return err instanceof CpError && (name === undefined || err.kind === ERRORS[name]);
}

/** Whether an etcd client error means "could not reach etcd" (as opposed to a logic error). */
export function isStoreUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const name = err.constructor.name;
  if (/Unavailable|DeadlineExceeded|Cancelled|BrokenCircuit|ClientRuntime|Timeout/i.test(name)) return true;
  return /UNAVAILABLE|DEADLINE_EXCEEDED|ECONNREFUSED|No connection established|Deadline exceeded|etcd request timed out/i.test(err.message);
}

/** Maps any error to a CpError: etcd outages become STORE_UNAVAILABLE, the rest INTERNAL. */
export function toCpError(err: unknown): CpError {
  if (err instanceof CpError) return err;
  if (isStoreUnavailable(err)) return new CpError('STORE_UNAVAILABLE', `etcd is unavailable: ${(err as Error).message}`);
  return new CpError('INTERNAL', err instanceof Error ? err.message : String(err));
}

/** The gRPC error a handler answers with: details = message, metadata carries the stable code and extras. */
export function toServiceError(err: unknown): Partial<ServiceError> {
  const cp = toCpError(err);
  const metadata = new Metadata();
  metadata.set('doorman-error-code', cp.code);
  for (const [k, v] of Object.entries(cp.meta)) metadata.set(`doorman-${k}`, v);
  return { code: cp.kind.grpc, details: cp.message, metadata };
}
