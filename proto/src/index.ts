export type {
  ClientTlsMode,
  ConfigIssue,
  DoormanConfig,
  GeneralConfig,
  LogFormat,
  MetricsConfig,
  PoolConfig,
  PoolMode,
  ServerTlsMode,
  UserConfig,
} from './config/types.js';
export { ConfigError, describeValue } from './config/errors.js';
export { parseDuration } from './config/duration.js';
export { parseSize } from './config/size.js';
export { DEFAULT_GENERAL, DEFAULT_POOL, DEFAULT_USER, LIMITS, RESERVED_DATABASE_NAMES } from './config/defaults.js';
export { loadConfigFile, parseConfig } from './config/parse.js';
export type { ParseOptions, WarningHandler } from './config/parse.js';
export { poolFingerprint, userFingerprint } from './config/fingerprint.js';
