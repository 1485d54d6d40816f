import { status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import type { AdminServer, GetResponse, HistoryEntry } from '@doorman/proto/api';
import type { Logger } from 'pino';
import type { Applier } from '../apply/applier.js';
import { configView, poolRows, userRows } from '../apply/views.js';
import { CpError, toCpError, toServiceError } from '../errors.js';
import type { NodeRecorder } from '../fleet/recorder.js';
import { fleetRecords, fleetStats, labelsMatch, toNodeStatus } from '../fleet/nodes.js';
import type { Store } from '../store/store.js';
import { authorizeAdmin, type AuthPolicy } from './auth.js';

export interface AdminDeps {
  store: Store;
  applier: Applier;
  recorder: NodeRecorder;
  policy: AuthPolicy;
  address: string;
  log: Logger;
}

const GET_KINDS = ['config', 'pools', 'users', 'nodes'] as const;

/** Wraps a handler: authentication, then the result or the catalogued error. */
function unary<Req, Res>(deps: AdminDeps, method: string, fn: (req: Req) => Promise<Res> | Res) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    Promise.resolve()
      .then(() => {
        authorizeAdmin(call, deps.policy);
        return fn(call.request);
      })
      .then(
        (res) => callback(null, res),
        (err: unknown) => {
          const cp = toCpError(err);
          const level = cp.kind.grpc === status.INTERNAL ? 'error' : 'info';
          deps.log[level]({ method, code: cp.code, err: cp.message }, 'admin call failed');
          callback(toServiceError(cp) as Parameters<sendUnaryData<Res>>[0]);
        },
      );
  };
}

export function adminService(deps: AdminDeps): AdminServer {
  const { store, applier } = deps;

  const nodes = () => fleetRecords(store.view(), deps.recorder.local());

  const get = async (kind: string, generation: number): Promise<GetResponse> => {
    if (!(GET_KINDS as readonly string[]).includes(kind)) {
      throw new CpError('INVALID_REQUEST', `kind must be one of ${GET_KINDS.join(', ')}; got ${JSON.stringify(kind)}`);
    }
    const view = store.view();
    if (kind === 'nodes') {
      const list = nodes().map(({ record, connected }) => toNodeStatus(record, connected));
      return { generation: view.generation, json: JSON.stringify(list) };
    }
    const gen = generation === 0 ? view.generation : generation;
    if (gen === 0) return { generation: 0, json: kind === 'config' ? '{}' : '[]' };
    const record = await store.readGeneration(gen);
    if (!record) throw new CpError('NOT_FOUND', `generation ${gen} does not exist or was pruned from history`);
    const box = record.secretsGeneration === 0 ? null : await store.readSecrets(record.secretsGeneration);
    const { secrets } = applier.openHead({ record, sealedSecrets: box, secretsGeneration: record.secretsGeneration });
    const body = kind === 'config' ? configView(record.document, secrets) : kind === 'pools' ? poolRows(record.document, secrets) : userRows(record.document, secrets);
    return { generation: gen, json: JSON.stringify(body) };
  };

  return {
    apply: unary(deps, 'Apply', (req) =>
      applier.apply(req.documentYaml, { dryRun: req.dryRun, expectedGeneration: req.expectedGeneration, author: req.author || 'unknown' }),
    ),
    diff: unary(deps, 'Diff', (req) => applier.diffYaml(req.documentYaml)),
    get: unary(deps, 'Get', (req) => get(req.kind, req.generation)),
    history: unary(deps, 'History', (req) => {
      const entries: HistoryEntry[] = [...store.view().generations.values()]
        .sort((a, b) => b.generation - a.generation)
        .slice(0, req.limit > 0 ? req.limit : undefined)
        .map((r) => ({ generation: r.generation, author: r.author, appliedAtUnixMs: r.appliedAtUnixMs, summary: r.summary }));
      return { entries };
    }),
    rollback: unary(deps, 'Rollback', (req) => applier.rollback(req.toGeneration, req.author || 'unknown')),
    delete: unary(deps, 'Delete', (req) => applier.delete(req.database, req.username, req.author || 'unknown', req.expectedGeneration)),
    status: unary(deps, 'Status', () => {
      const view = store.view();
      return {
        generation: view.generation,
        secretsGeneration: view.secretsGeneration,
        replica: deps.address,
        leader: view.leader?.record.address ?? '',
        nodes: nodes().map(({ record, connected }) => toNodeStatus(record, connected)),
      };
    }),
    nodes: unary(deps, 'Nodes', (req) => ({
      nodes: nodes()
        .filter(({ record }) => labelsMatch(record, req.labels))
        .map(({ record, connected }) => toNodeStatus(record, connected)),
    })),
    stats: unary(deps, 'Stats', (req) =>
      fleetStats(
        nodes()
          .filter(({ record, connected }) => connected && labelsMatch(record, req.labels))
          .map(({ record }) => record),
      ),
    ),
  };
}
