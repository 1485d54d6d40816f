import type { Logger } from 'pino';
import type { SecretsPush } from '@doorman/proto/api';
import type { SecretsSealer } from '../secrets/sealer.js';
import type { SecretSet } from '../secrets/split.js';
import type { Store } from '../store/store.js';
import type { Desired } from '../server/node-stream.js';

type SecretsBody = Omit<SecretsPush, 'nonce' | 'version'>;

export function secretsPushBody(set: SecretSet): SecretsBody {
  const users: SecretsBody['users'] = [];
  for (const db of Object.keys(set.users).sort()) {
    const byUser = set.users[db] ?? {};
    for (const username of Object.keys(byUser).sort()) {
      const s = byUser[username];
      if (s) users.push({ database: db, username, password: s.password, serverPassword: s.serverPassword });
    }
  }
  return { users, adminPassword: set.adminPassword };
}

/** What every data plane should run, from the store's cache; serialised once per generation. */
export class DesiredState {
  private configCache: { version: number; documentJson: string } | null = null;
  private secretsCache: { version: number; body: SecretsBody } | null = null;

  constructor(
    private readonly store: Store,
    private readonly sealer: SecretsSealer,
    private readonly log: Logger,
  ) {}

  current(): Desired {
    const view = this.store.view();
    return { config: this.config(view.generation), secrets: this.secrets(view.secretsGeneration) };
  }

  private config(generation: number): Desired['config'] {
    if (generation === 0) return null;
    if (this.configCache?.version === generation) return this.configCache;
    const record = this.store.view().generations.get(generation);
    if (!record) return null;
    this.configCache = { version: generation, documentJson: JSON.stringify(record.document) };
    return this.configCache;
  }

  private secrets(secretsGeneration: number): Desired['secrets'] {
    if (secretsGeneration === 0) return null;
    if (this.secretsCache?.version !== secretsGeneration) {
      const box = this.store.view().secrets.get(secretsGeneration);
      if (box === undefined) return null;
      try {
        this.secretsCache = { version: secretsGeneration, body: secretsPushBody(this.sealer.open(box, secretsGeneration)) };
      } catch (err) {
        this.log.error({ secretsGeneration, err: err instanceof Error ? err.message : String(err) }, 'cannot open secrets');
        return null;
      }
    }
    const body = this.secretsCache.body;
    return { version: secretsGeneration, build: () => body };
  }
}
