export * from './ports.js';
export * from './processes.js';
export * from './tls.js';
export * from './postgres.js';
export * from './doorman.js';
export * from './pgbouncer.js';
export * from './clients.js';
