/**
 * The last-known-good store: the last config and secrets this node accepted, so it can boot and serve
 * when no control plane answers (config fails static). Each file is replaced atomically: written to a
 * temporary file, fsynced, renamed over the old one, and the directory fsynced, so a crash leaves either
 * the old or the new version, never a torn one. Files are 0600: the secrets file holds passwords.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Secrets } from './document.js';
import { AgentError, A } from './errors.js';

export interface StoredConfig {
  version: number;
  documentJson: string;
}

export interface LastKnownGood {
  config: StoredConfig;
  secrets: Secrets | null;
}

const CONFIG_FILE = 'config.json';
const SECRETS_FILE = 'secrets.json';

function writeAtomically(dir: string, name: string, text: string): void {
  const target = path.join(dir, name);
  const temp = path.join(dir, `.${name}.${process.pid}.tmp`);
  try {
    const fd = openSync(temp, 'w', 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, target);
    // The rename itself is durable only once the directory entry is on disk.
    const dirFd = openSync(dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } catch (err) {
    rmSync(temp, { force: true });
    throw new AgentError(A.stateWriteFailed, `cannot write ${target}: ${(err as Error).message}`);
  }
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AgentError(A.stateUnreadable, `cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new AgentError(A.stateUnreadable, `${file} is not valid JSON: ${(err as Error).message}`);
  }
}

function isVersion(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
}

function asConfig(v: unknown, file: string): StoredConfig {
  const o = v as Partial<StoredConfig> | null;
  if (typeof o !== 'object' || o === null || !isVersion(o.version) || typeof o.documentJson !== 'string') {
    throw new AgentError(A.stateUnreadable, `${file} does not hold a stored config`);
  }
  return { version: o.version, documentJson: o.documentJson };
}

function asSecrets(v: unknown, file: string): Secrets {
  const o = v as Partial<Secrets> | null;
  const userOk = (u: unknown): boolean => {
    const x = u as Record<string, unknown> | null;
    return typeof x === 'object' && x !== null && ['database', 'username', 'password', 'serverPassword'].every((k) => typeof x[k] === 'string');
  };
  if (typeof o !== 'object' || o === null || !isVersion(o.version) || !Array.isArray(o.users) || !o.users.every(userOk) || typeof o.adminPassword !== 'string') {
    throw new AgentError(A.stateUnreadable, `${file} does not hold stored secrets`);
  }
  return { version: o.version, users: o.users, adminPassword: o.adminPassword };
}

export class StateStore {
  constructor(readonly dir: string) {}

  saveConfig(config: StoredConfig): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeAtomically(this.dir, CONFIG_FILE, JSON.stringify(config));
  }

  saveSecrets(secrets: Secrets): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeAtomically(this.dir, SECRETS_FILE, JSON.stringify(secrets));
  }

  /** null when nothing was ever accepted; throws when what is there cannot be read. */
  load(): LastKnownGood | null {
    const configFile = path.join(this.dir, CONFIG_FILE);
    const secretsFile = path.join(this.dir, SECRETS_FILE);
    const config = readJson(configFile);
    if (config === undefined) return null;
    const secrets = readJson(secretsFile);
    return { config: asConfig(config, configFile), secrets: secrets === undefined ? null : asSecrets(secrets, secretsFile) };
  }
}
