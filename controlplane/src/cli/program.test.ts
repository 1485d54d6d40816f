import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import {
  AdminService,
  type ApplyRequest,
  type ApplyResponse,
  type DiffResponse,
  type GetResponse,
  type StatusResponse,
} from '@doorman/proto/api';
import { GrpcAdmin, type AdminApi, type ConnectOptions } from './admin-api.js';
import { connectOptions } from './connect-options.js';
import { CliError, EXIT } from './exit-codes.js';
import { runCli } from './program.js';

const DIFF_ONE = [{ change: 'changed', path: 'pools.app.users.alice.pool_size', before: '20', after: '30', restartRequired: false }];

/** An AdminApi double: answers from `answers`, records requests. */
function fakeApi(answers: Partial<Record<keyof AdminApi, (req: never) => unknown>>): { api: AdminApi; calls: [string, unknown][] } {
  const calls: [string, unknown][] = [];
  const method = (name: keyof AdminApi) => async (req: unknown) => {
    calls.push([name, req]);
    const answer = answers[name];
    if (answer === undefined) throw new Error(`unexpected call ${name}`);
    return answer(req as never);
  };
  const api = {
    apply: method('apply'), diff: method('diff'), get: method('get'), history: method('history'), rollback: method('rollback'),
    delete: method('delete'), status: method('status'), nodes: method('nodes'), stats: method('stats'), close: () => undefined,
  } as unknown as AdminApi;
  return { api, calls };
}

async function cli(argv: string[], api: AdminApi | null, env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string; opts: ConnectOptions | null }> {
  let out = '';
  let err = '';
  let opts: ConnectOptions | null = null;
  const code = await runCli(argv, {
    connect: (o) => {
      opts = o;
      if (api === null) throw new Error('no API in this test');
      return api;
    },
    stdout: (s) => (out += s),
    stderr: (s) => (err += s),
    env,
    now: () => 0,
  });
  return { code, out, err, opts };
}

function withDoc<T>(fn: (file: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'doormanctl-test-'));
  const file = path.join(dir, 'pools.yaml');
  writeFileSync(file, 'pools: {}\n');
  return fn(file).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test('diff exit codes: 0 without changes, 1 with changes, 2 for an unreadable file, 3 unreachable', async () => {
  await withDoc(async (file) => {
    const none = fakeApi({ diff: (): DiffResponse => ({ generation: 5, diff: [] }) });
    const r0 = await cli(['--server', 'cp:1', '--insecure', 'diff', '-f', file], none.api);
    assert.equal(r0.code, 0);
    assert.equal(r0.out, 'no changes against generation 5\n');
    assert.deepEqual(none.calls, [['diff', { documentYaml: 'pools: {}\n' }]]);

    const some = fakeApi({ diff: (): DiffResponse => ({ generation: 5, diff: DIFF_ONE }) });
    const r1 = await cli(['--server', 'cp:1', '--insecure', 'diff', '-f', file], some.api);
    assert.equal(r1.code, 1);
    assert.equal(r1.out, '~ pools.app.users.alice.pool_size: 20 -> 30\n1 change(s) against generation 5\n');
  });
  const r2 = await cli(['--server', 'cp:1', '--insecure', 'diff', '-f', '/nonexistent/pools.yaml'], fakeApi({}).api);
  assert.equal(r2.code, 2);
  assert.equal(r2.err, 'doormanctl: /nonexistent/pools.yaml: cannot read: ENOENT\n');
  const unreachable = fakeApi({
    diff: () => {
      throw new CliError(EXIT.UNREACHABLE, 'cannot reach the control plane; tried cp:1 (ECONNREFUSED)');
    },
  });
  await withDoc(async (file) => {
    const r3 = await cli(['--server', 'cp:1', '--insecure', 'diff', '-f', file], unreachable.api);
    assert.equal(r3.code, 3);
    assert.equal(r3.err, 'doormanctl: cannot reach the control plane; tried cp:1 (ECONNREFUSED)\n');
  });
});

test('apply sends the document, flags and author; prints the diff and the new generation', async () => {
  await withDoc(async (file) => {
    const f = fakeApi({ apply: (req: ApplyRequest): ApplyResponse => ({ generation: 6, changed: !req.dryRun, dryRun: req.dryRun, diff: DIFF_ONE, warnings: ['w1'] }) });
    const r = await cli(['--server', 'cp:1', '--insecure', 'apply', '-f', file, '--expected-generation', '5'], f.api);
    assert.equal(r.code, 0);
    assert.equal(r.out, '~ pools.app.users.alice.pool_size: 20 -> 30\napplied generation 6 (1 change(s))\n');
    assert.equal(r.err, 'warning: w1\n');
    const req = f.calls[0][1] as ApplyRequest;
    assert.equal(req.expectedGeneration, 5);
    assert.equal(req.dryRun, false);
    assert.match(req.author, /^.+@.+$/);
    const dry = await cli(['--server', 'cp:1', '--insecure', 'apply', '-f', file, '--dry-run'], f.api);
    assert.equal(dry.out.split('\n')[1], 'dry run: 1 change(s) not applied; current generation 6');
  });
});

test('usage errors exit 2 (never 1, which diff reserves), help exits 0', async () => {
  const missingFile = await cli(['--server', 'cp:1', 'apply'], null);
  assert.equal(missingFile.code, 2);
  assert.match(missingFile.err, /required option '-f, --file <file>' not specified/);
  assert.equal((await cli(['get', 'things'], null)).code, 2);
  assert.equal((await cli(['history', '--limit', 'x'], null)).code, 2);
  assert.equal((await cli(['rollback', '--to', '0'], null)).code, 2);
  const noServer = await cli(['status'], fakeApi({}).api);
  assert.equal(noServer.code, 2);
  assert.equal(noServer.err, 'doormanctl: no control plane given: use --server host:port[,host:port] or set DOORMAN_CONTROL_PLANE\n');
  const help = await cli(['--help'], null);
  assert.equal(help.code, 0);
  assert.match(help.out, /Usage: doormanctl/);
});

test('global flags and environment: servers, TLS, token, timeout', async () => {
  const f = fakeApi({ status: (): StatusResponse => ({ generation: 1, secretsGeneration: 0, replica: 'r', leader: 'r', nodes: [] }) });
  const r = await cli(['status'], f.api, { DOORMAN_CONTROL_PLANE: 'a:1,b:2,a:1', DOORMAN_TOKEN: ' tok ', DOORMAN_CA: '/ca.pem' });
  assert.equal(r.code, 0);
  assert.deepEqual(r.opts, { servers: ['a:1', 'b:2'], tls: { ca: '/ca.pem', cert: null, key: null }, token: 'tok', timeoutMs: 10_000 });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'doormanctl-token-'));
  try {
    const tokenFile = path.join(dir, 'token');
    writeFileSync(tokenFile, 'from-file\n');
    assert.deepEqual(connectOptions({ server: 'x:9', insecure: true, tokenFile, timeout: '1500ms' }, { DOORMAN_TOKEN: 'env' }), {
      servers: ['x:9'], tls: null, token: 'from-file', timeoutMs: 1500,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.throws(() => connectOptions({ server: 'x' }, {}), /--server: "x" is not host:port/);
  assert.throws(() => connectOptions({ server: 'x:1', cert: 'c' }, {}), /--cert and --key go together/);
  assert.throws(() => connectOptions({ server: 'x:1', insecure: true, ca: 'c' }, {}), /--insecure cannot be combined/);
  assert.throws(() => connectOptions({ server: 'x:1', timeout: 'later' }, {}), /--timeout: must be a duration/);
  assert.throws(() => connectOptions({ server: 'x:1', tokenFile: '/nonexistent/t' }, {}), /--token-file: cannot read \/nonexistent\/t: ENOENT/);
});

test('get prints lists as tables, a config as YAML, and -o json as the parsed document', async () => {
  const f = fakeApi({
    get: (req: { kind: string }): GetResponse =>
      req.kind === 'pools'
        ? { generation: 3, json: JSON.stringify([{ database: 'app', users: 1 }]) }
        : { generation: 3, json: JSON.stringify({ general: { port: 6432 }, pools: {} }) },
  });
  const t = await cli(['-s', 'cp:1', '--insecure', 'get', 'pools'], f.api);
  assert.equal(t.out, 'DATABASE  USERS\napp           1\n(generation 3)\n');
  const y = await cli(['-s', 'cp:1', '--insecure', 'get', 'config'], f.api);
  assert.equal(y.out, 'general:\n  port: 6432\npools: {}\n(generation 3)\n');
  const j = await cli(['-s', 'cp:1', '--insecure', 'get', 'pools', '-o', 'json'], f.api);
  assert.deepEqual(JSON.parse(j.out), [{ database: 'app', users: 1 }]);
});

interface AdminBehaviour {
  apply?: (call: grpc.ServerUnaryCall<ApplyRequest, ApplyResponse>, cb: grpc.sendUnaryData<ApplyResponse>) => void;
}

async function adminServer(b: AdminBehaviour, creds = grpc.ServerCredentials.createInsecure()): Promise<{ address: string; stop: () => void }> {
  const server = new grpc.Server();
  const unimplemented = (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code: grpc.status.UNIMPLEMENTED });
  server.addService(AdminService, {
    apply: b.apply ?? unimplemented, diff: unimplemented, get: unimplemented, history: unimplemented, rollback: unimplemented,
    delete: unimplemented, status: unimplemented, nodes: unimplemented, stats: unimplemented,
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { address: `127.0.0.1:${port}`, stop: () => server.forceShutdown() };
}

function cpError(code: grpc.status, details: string, meta: Record<string, string>): Partial<grpc.ServiceError> {
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(meta)) metadata.set(k, v);
  return { code, details, metadata };
}

const APPLY: ApplyRequest = { documentYaml: 'pools: {}', dryRun: false, expectedGeneration: 0, author: 't' };

test('GrpcAdmin skips a dead replica, follows a follower\'s leader hint, and maps server errors to exit codes', { timeout: 20_000 }, async () => {
  const seen: string[] = [];
  const leader = await adminServer({
    apply: (call, cb) => {
      seen.push('leader');
      if (call.request.documentYaml === 'bad') {
        cb(cpError(grpc.status.INVALID_ARGUMENT, 'pools.app.users[0].pool_size: must be at least 1\ngeneral.port: must be a port', { 'doorman-error-code': 'DOORMAN_CP_INVALID_CONFIG' }));
        return;
      }
      cb(null, { generation: 8, changed: true, dryRun: false, diff: [], warnings: [] });
    },
  });
  const follower = await adminServer({
    apply: (_call, cb) => {
      seen.push('follower');
      cb(cpError(grpc.status.FAILED_PRECONDITION, `not the leader; the leader is ${leader.address}`, {
        'doorman-error-code': 'DOORMAN_CP_NOT_LEADER',
        'doorman-leader': leader.address,
      }));
    },
  });
  const dead = await adminServer({});
  dead.stop();
  const admin = new GrpcAdmin({ servers: [dead.address, follower.address], tls: null, token: 'tok', timeoutMs: 5_000 });
  try {
    const r = await admin.apply(APPLY);
    assert.equal(r.generation, 8);
    assert.deepEqual(seen, ['follower', 'leader']);
    await assert.rejects(admin.apply({ ...APPLY, documentYaml: 'bad' }), (e: unknown) => {
      assert.ok(e instanceof CliError);
      assert.equal(e.exit, EXIT.INVALID);
      assert.equal(e.message, 'apply: the document is invalid:\npools.app.users[0].pool_size: must be at least 1\ngeneral.port: must be a port');
      return true;
    });
  } finally {
    admin.close();
    leader.stop();
    follower.stop();
  }
  const nobody = new GrpcAdmin({ servers: [dead.address], tls: null, token: null, timeoutMs: 5_000 });
  try {
    await assert.rejects(nobody.apply(APPLY), (e: unknown) => {
      assert.ok(e instanceof CliError);
      assert.equal(e.exit, EXIT.UNREACHABLE);
      assert.equal(e.message, `cannot reach the control plane; tried ${dead.address} (ECONNREFUSED)`);
      return true;
    });
  } finally {
    nobody.close();
  }
});

test('certs init writes a CA, a server certificate for 127.0.0.1 and client certificates, keys 0600', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'doormanctl-certs-'));
  try {
    const r = await cli(['certs', 'init', '--dir', dir, '--days', '2'], null);
    assert.equal(r.code, 0, r.err);
    for (const role of ['ca', 'server', 'dataplane', 'doormanctl']) {
      assert.equal(statSync(path.join(dir, `${role}.key`)).mode & 0o777, 0o600);
      assert.ok(statSync(path.join(dir, `${role}.crt`)).size > 500);
    }
    // A server with that certificate, requiring client certificates, accepts doormanctl's.
    const file = (name: string): Buffer => readFileSync(path.join(dir, name));
    const creds = grpc.ServerCredentials.createSsl(file('ca.crt'), [{ cert_chain: file('server.crt'), private_key: file('server.key') }], true);
    const server = await adminServer({ apply: (_call, cb) => cb(null, { generation: 1, changed: false, dryRun: false, diff: [], warnings: [] }) }, creds);
    const tls = { ca: path.join(dir, 'ca.crt'), cert: path.join(dir, 'doormanctl.crt'), key: path.join(dir, 'doormanctl.key') };
    const admin = new GrpcAdmin({ servers: [server.address], tls, token: null, timeoutMs: 5_000 });
    try {
      assert.equal((await admin.apply(APPLY)).generation, 1);
    } finally {
      admin.close();
      server.stop();
    }
    const again = await cli(['certs', 'init', '--dir', dir], null);
    assert.equal(again.code, 2);
    assert.match(again.err, /already holds ca\.crt, ca\.key, .*use --force/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
