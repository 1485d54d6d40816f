import type { ApplyResponse, DiffEntry } from '@doorman/proto/api';
import type { Logger } from 'pino';
import { CpError } from '../errors.js';
import type { Election } from '../leader/election.js';
import type { SecretsSealer } from '../secrets/sealer.js';
import { emptySecrets, mergeSecrets, secretsEqual, secretsFor, splitSecrets, userList, type Doc, type SecretSet } from '../secrets/split.js';
import type { GenerationRecord, Head, Store } from '../store/store.js';
import { diffDocuments, summarize } from './diff.js';
import { parseApplyDocument, validate } from './document.js';

export interface ApplierOptions {
  /** Generations kept (history and snapshots). */
  historyLimit: number;
}

interface Change {
  kind: string;
  author: string;
  document: Doc;
  secrets: SecretSet;
  expectedGeneration: number;
  warnings: string[];
}

/** How often a write retries a CAS that lost to a concurrent write it did not ask to guard against. */
const CAS_RETRIES = 5;

/**
 * validate -> diff -> (dry run) -> commit a generation. Writes run one at a time on the leader; each
 * is one fenced compare-and-swap on the generation key's mod revision.
 */
export class Applier {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly election: Election,
    private readonly sealer: SecretsSealer,
    private readonly log: Logger,
    private readonly options: ApplierOptions,
  ) {}

  /** The current document and secrets (secret-free document; secrets decrypted). */
  openHead(head: Pick<Head, 'record' | 'sealedSecrets' | 'secretsGeneration'>): { document: Doc; secrets: SecretSet } {
    const document = head.record?.document ?? {};
    const secrets = head.sealedSecrets === null || head.sealedSecrets === undefined ? emptySecrets() : this.sealer.open(head.sealedSecrets, head.secretsGeneration);
    return { document, secrets };
  }

  async apply(yamlText: string, options: { dryRun: boolean; expectedGeneration: number; author: string }): Promise<ApplyResponse> {
    const parsed = parseApplyDocument(yamlText);
    const { document, secrets } = splitSecrets(parsed.doc);
    if (options.dryRun) {
      const { generation, diff } = await this.diff(document, secrets);
      if (options.expectedGeneration !== 0 && options.expectedGeneration !== generation) throw conflict(options.expectedGeneration, generation);
      return { generation, changed: diff.length > 0, dryRun: true, diff, warnings: parsed.warnings };
    }
    return this.write({ kind: 'apply', author: options.author, document, secrets, expectedGeneration: options.expectedGeneration, warnings: parsed.warnings });
  }

  /** Diff of a document against the current generation (any replica; fresh read, cache if etcd is down). */
  async diffYaml(yamlText: string): Promise<{ generation: number; diff: DiffEntry[] }> {
    const { document, secrets } = splitSecrets(parseApplyDocument(yamlText).doc);
    return this.diff(document, secrets);
  }

  async rollback(toGeneration: number, author: string): Promise<ApplyResponse> {
    if (toGeneration <= 0) throw new CpError('INVALID_REQUEST', 'to_generation must be a generation number (>= 1)');
    const record = await this.store.readGeneration(toGeneration);
    if (!record) throw new CpError('NOT_FOUND', `generation ${toGeneration} does not exist or was pruned from history`);
    const warnings: string[] = [];
    let secrets: SecretSet;
    const box = await this.store.readSecrets(record.secretsGeneration);
    if (record.secretsGeneration === 0) {
      secrets = emptySecrets();
    } else if (box === null || box === undefined) {
      // Its secrets were pruned: keep today's secrets for the users it names.
      const head = await this.store.readHead();
      secrets = secretsFor(record.document, this.openHead(head).secrets);
      warnings.push(`the secrets of generation ${toGeneration} were pruned; current secrets are kept for its users`);
    } else {
      secrets = this.sealer.open(box, record.secretsGeneration);
    }
    return this.write({ kind: `rollback to ${toGeneration}`, author, document: record.document, secrets, expectedGeneration: 0, warnings });
  }

  async delete(database: string, username: string, author: string, expectedGeneration: number): Promise<ApplyResponse> {
    if (database === '') throw new CpError('INVALID_REQUEST', 'database is required');
    return this.serialized(async () => {
      const fence = this.election.fence();
      const head = await this.store.readHead();
      const { document, secrets } = this.openHead(head);
      const next = structuredClone(document);
      const pools = next.pools as Record<string, Record<string, unknown>> | undefined;
      const pool = pools?.[database];
      if (!pools || !pool) throw new CpError('NOT_FOUND', `pool ${JSON.stringify(database)} does not exist in generation ${head.generation}`);
      let what = `pools.${database}`;
      if (username === '') {
        delete pools[database];
      } else {
        const users = userList(pool);
        const kept = users.filter((u) => u.username !== username);
        if (kept.length === users.length) throw new CpError('NOT_FOUND', `user ${JSON.stringify(username)} does not exist in pool ${JSON.stringify(database)}`);
        pool.users = kept;
        what = `pools.${database}.users.${username}`;
      }
      const change = { kind: `delete ${what}`, author, document: next, secrets: secretsFor(next, secrets), expectedGeneration, warnings: [] };
      return this.commit(change, fence, head);
    });
  }

  private async diff(document: Doc, secrets: SecretSet): Promise<{ generation: number; diff: DiffEntry[] }> {
    let head: Pick<Head, 'generation' | 'record' | 'sealedSecrets' | 'secretsGeneration'>;
    try {
      head = await this.store.readHead();
    } catch {
      // etcd unreachable: answer from the cache, which is as fresh as the last watch event.
      const view = this.store.view();
      head = {
        generation: view.generation,
        record: view.generations.get(view.generation) ?? null,
        secretsGeneration: view.secretsGeneration,
        sealedSecrets: view.secrets.get(view.secretsGeneration) ?? null,
      };
    }
    const current = this.openHead(head);
    return { generation: head.generation, diff: diffDocuments(current.document, current.secrets, document, secrets) };
  }

  private write(change: Change): Promise<ApplyResponse> {
    return this.serialized(async () => {
      const fence = this.election.fence();
      return this.commit(change, fence, await this.store.readHead());
    });
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async commit(change: Change, fence: ReturnType<Election['fence']>, firstHead: Head): Promise<ApplyResponse> {
    let head = firstHead;
    for (let attempt = 0; ; attempt++) {
      if (change.expectedGeneration !== 0 && change.expectedGeneration !== head.generation) throw conflict(change.expectedGeneration, head.generation);
      const current = this.openHead(head);
      const diff = diffDocuments(current.document, current.secrets, change.document, change.secrets);
      if (diff.length === 0) return { generation: head.generation, changed: false, dryRun: false, diff, warnings: change.warnings };
      // Every stored generation must be one a data plane can load: re-validate with secrets merged in.
      validate(mergeSecrets(change.document, change.secrets), `generation ${head.generation + 1}`);

      const generation = head.generation + 1;
      const secretsMove = !secretsEqual(current.secrets, change.secrets) || head.secretsGeneration === 0;
      const secretsGeneration = secretsMove ? head.secretsGeneration + 1 : head.secretsGeneration;
      const record: GenerationRecord = {
        generation,
        author: change.author,
        appliedAtUnixMs: Date.now(),
        summary: summarize(change.kind, diff),
        document: change.document,
        secretsGeneration,
      };
      const pruneGenerationsBelow = Math.max(0, generation - this.options.historyLimit + 1);
      const outcome = await this.store.commit({
        fence,
        expectedModRevision: head.modRevision,
        record,
        ...(secretsMove ? { sealedSecrets: this.sealer.seal(change.secrets, secretsGeneration) } : {}),
        pruneGenerationsBelow,
        pruneSecretsBelow: await this.oldestSecretsKept(pruneGenerationsBelow, secretsGeneration),
      });
      if (outcome === 'committed') {
        this.log.info({ generation, secretsGeneration, author: change.author, summary: record.summary }, 'generation committed');
        return { generation, changed: true, dryRun: false, diff, warnings: change.warnings };
      }
      if (outcome === 'fenced') {
        this.election.fenced();
        throw this.election.notLeaderError();
      }
      if (change.expectedGeneration !== 0 || attempt >= CAS_RETRIES) {
        const now = await this.store.readHead();
        throw conflict(change.expectedGeneration || head.generation, now.generation);
      }
      head = await this.store.readHead();
    }
  }

  /** Secrets generations older than the oldest kept snapshot's are no longer referenced. */
  private async oldestSecretsKept(oldestGeneration: number, current: number): Promise<number> {
    if (oldestGeneration <= 1) return 0;
    const record = await this.store.readGeneration(oldestGeneration).catch(() => null);
    return record ? Math.min(record.secretsGeneration, current) : 0;
  }
}

function conflict(expected: number, current: number): CpError {
  return new CpError('CONFLICT', `generation conflict: expected generation ${expected} but the current generation is ${current}; re-read and retry`, {
    'current-generation': String(current),
  });
}
