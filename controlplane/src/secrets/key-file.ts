import { readFileSync } from 'node:fs';
import { CpError } from '../errors.js';

/**
 * Reads the 32-byte secrets key: 64 hex digits or 44 base64 characters (whitespace ignored).
 * The error names the flag so an operator knows what to fix.
 */
export function readSecretsKey(file: string, flag = '--secrets-key-file'): Buffer {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new CpError('SECRETS_KEY', `${flag}: cannot read ${JSON.stringify(file)}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return parseSecretsKey(text, flag);
}

export function parseSecretsKey(text: string, flag = '--secrets-key-file'): Buffer {
  const compact = text.replace(/\s+/g, '');
  if (/^[0-9a-fA-F]{64}$/.test(compact)) return Buffer.from(compact, 'hex');
  if (/^[A-Za-z0-9+/]{43}=?$/.test(compact)) {
    const key = Buffer.from(compact, 'base64');
    if (key.length === 32) return key;
  }
  throw new CpError('SECRETS_KEY', `${flag}: the key must be 32 bytes written as 64 hex digits or base64 (e.g. openssl rand -hex 32)`);
}
