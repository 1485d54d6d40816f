import pino, { type Logger } from 'pino';

/** JSON logs on stdout. Secrets never reach a log call; redaction is the second line of defence. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'doorman-controlplane' },
    redact: {
      paths: ['password', 'server_password', 'admin_password', '*.password', '*.server_password', '*.admin_password', 'secrets', '*.secrets', 'token', 'authorization'],
      censor: '[redacted]',
    },
  });
}
