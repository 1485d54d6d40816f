import { timingSafeEqual, createHash } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';
import { CpError } from '../errors.js';

/** Who may call what: Admin needs the bearer token or a verified client certificate; streams need a certificate. */
export interface AuthPolicy {
  tls: boolean;
  /** null = no token configured (only allowed with --insecure). */
  adminToken: string | null;
}

/** The subset of a grpc-js server call that authentication looks at. */
export interface AuthenticatedCall {
  metadata: Metadata;
  getAuthContext(): { sslPeerCertificate?: unknown };
}

function sameToken(given: string, expected: string): boolean {
  // Hash first so the comparison is constant-time whatever the lengths.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function bearer(metadata: Metadata): string | null {
  const value = metadata.get('authorization')[0];
  if (typeof value !== 'string') return null;
  const m = /^Bearer\s+(.+)$/i.exec(value.trim());
  return m?.[1] ?? null;
}

function hasVerifiedCert(call: AuthenticatedCall): boolean {
  // grpc-js reports a peer certificate only when the TLS handshake verified it against --tls-client-ca.
  return call.getAuthContext().sslPeerCertificate !== undefined;
}

export function authorizeAdmin(call: AuthenticatedCall, policy: AuthPolicy): void {
  const token = bearer(call.metadata);
  if (token !== null && policy.adminToken !== null && sameToken(token, policy.adminToken)) return;
  if (policy.tls && hasVerifiedCert(call)) return;
  if (!policy.tls && policy.adminToken === null) return;
  throw new CpError(
    'UNAUTHENTICATED',
    token === null ? 'admin calls need "authorization: Bearer <token>" metadata or a client certificate' : 'the bearer token is not valid',
  );
}

export function authorizeDataPlane(call: AuthenticatedCall, policy: AuthPolicy): void {
  if (!policy.tls) return;
  if (!hasVerifiedCert(call)) throw new CpError('UNAUTHENTICATED', 'data-plane streams need a client certificate issued by --tls-client-ca');
}
