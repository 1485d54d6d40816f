export { Doorman } from './doorman.js';
export { loadConfig, validateLoaded, type LoadedConfig } from './config/load.js';
export { createLogger } from './log.js';
