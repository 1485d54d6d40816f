import { CpError } from '../errors.js';
import { isSealedBox, open, seal, type SealedBox } from './crypto.js';
import type { SecretSet } from './split.js';

/** Encrypts and decrypts whole secret sets; the additional data names the generation they belong to. */
export class SecretsSealer {
  private readonly key: Buffer;
  /** True when running with --insecure-dev-secrets (a fixed, publicly known key). */
  readonly insecure: boolean;

  constructor(key: Buffer | null) {
    this.insecure = key === null;
    // A fixed all-zero key keeps one storage format; the flag that allows it says it protects nothing.
    this.key = key ?? Buffer.alloc(32);
    if (this.key.length !== 32) throw new CpError('SECRETS_KEY', 'the secrets key must be 32 bytes');
  }

  seal(set: SecretSet, generation: number): SealedBox {
    return seal(this.key, JSON.stringify(set), aad(generation));
  }

  open(box: unknown, generation: number): SecretSet {
    if (!isSealedBox(box)) throw new CpError('SECRETS_CORRUPT', `secrets generation ${generation} is not a sealed box`);
    return JSON.parse(open(this.key, box, aad(generation))) as SecretSet;
  }
}

function aad(generation: number): string {
  return `doorman/secrets/${generation}`;
}
