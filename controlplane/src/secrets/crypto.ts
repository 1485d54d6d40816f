import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CpError } from '../errors.js';

/** An AES-256-GCM box as stored in etcd. `aad` binds the box to its key so boxes cannot be swapped. */
export interface SealedBox {
  v: 1;
  iv: string;
  tag: string;
  data: string;
}

const IV_BYTES = 12;

export function seal(key: Buffer, plaintext: string, aad: string): SealedBox {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return { v: 1, iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') };
}

export function open(key: Buffer, box: SealedBox, aad: string): string {
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(box.iv, 'base64'));
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(Buffer.from(box.tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(box.data, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    // Never echo the box or the key: a wrong key and a tampered box look the same.
    throw new CpError('SECRETS_CORRUPT', `cannot decrypt ${aad}: wrong --secrets-key-file or corrupted data`);
  }
}

export function isSealedBox(v: unknown): v is SealedBox {
  if (typeof v !== 'object' || v === null) return false;
  const b = v as Record<string, unknown>;
  return b.v === 1 && typeof b.iv === 'string' && typeof b.tag === 'string' && typeof b.data === 'string';
}
