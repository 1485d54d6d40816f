import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** JSON lines by default; human-readable when asked or when stdout is a terminal. */
export function createLogger(level: LogLevel, format: 'json' | 'pretty' | null, fields: Record<string, unknown> = {}): Logger {
  const usePretty = format === 'pretty' || (format === null && process.stdout.isTTY === true);
  const opts = {
    level,
    base: { pid: process.pid, ...fields },
    // Secrets must never reach a log line, whatever object is logged.
    redact: { paths: ['password', '*.password', 'server_password', '*.server_password', 'serverPassword', '*.serverPassword'], censor: '[redacted]' },
  };
  return usePretty ? pino(opts, pretty({ colorize: process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l' })) : pino(opts);
}
