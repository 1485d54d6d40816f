/**
 * Zero-downtime binary upgrade against real PostgreSQL and pgbench: SIGUSR2 starts the new process, which
 * takes the listening socket; idle clients move to it with their socket and state (prepared statements,
 * cancel keys), busy ones when their transaction ends; the old process exits when empty. A new binary or
 * config that fails its check is refused and the old process keeps serving.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { parseLog } from '../bench/pgbench-log.js';
import {
  DOORMAN_ADMIN,
  DOORMAN_ADMIN_DB,
  SCRAM_USER,
  connectPg,
  doormanConfigFor,
  eventually,
  pgbench,
  startDoorman,
  startPostgres,
  type DoormanProcess,
  type PgCluster,
} from '../harness/index.js';

const SUITE_TIMEOUT_MS = 240_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('binary upgrade', { timeout: SUITE_TIMEOUT_MS }, () => {
  let cluster: PgCluster | undefined;
  let doorman: DoormanProcess | undefined;
  let dir = '';
  /** The process serving now (changes with every upgrade). */
  let current = 0;

  function d(): DoormanProcess {
    assert.ok(doorman, 'Doorman did not start');
    return doorman;
  }

  const url = (): string => d().connectionString(SCRAM_USER.user, SCRAM_USER.password);
  const pidFile = (): string => path.join(dir, 'doorman.pid');

  function logs(msg: string): Record<string, unknown>[] {
    return d()
      .jsonLogs()
      .filter((l) => l.msg === msg);
  }

  /** SIGUSR2 (or the console's UPGRADE) to the serving process; resolves with the new pid once the old one has exited. */
  async function upgrade(via: 'signal' | 'console' = 'signal'): Promise<{ pid: number; exitMs: number }> {
    const handed = logs('upgrade: handed over').length;
    const exits = logs('upgrade: old process exiting').length;
    const old = current;
    const t0 = Date.now();
    if (via === 'signal') {
      process.kill(old, 'SIGUSR2');
    } else {
      // The console's own connection stays with the old process (it cannot move): it leaves right away.
      const admin = await connectPg(d().connectionString(DOORMAN_ADMIN.user, DOORMAN_ADMIN.password, DOORMAN_ADMIN_DB));
      assert.equal((await admin.query('UPGRADE')).command, 'UPGRADE');
      await admin.end();
    }
    await eventually(async () => logs('upgrade: handed over').length, (n) => n > handed, 30_000, 'the new process took over');
    const pid = logs('upgrade: handed over')[handed].newPid as number;
    await eventually(async () => logs('upgrade: old process exiting').length, (n) => n > exits, 30_000, 'the old process finished');
    await eventually(async () => alive(old), (a) => !a, 10_000, `old process ${old} exited`);
    assert.equal((await readFile(pidFile(), 'utf8')).trim(), String(pid), 'the pid file names the new process');
    current = pid;
    return { pid, exitMs: Date.now() - t0 };
  }

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'doorman-upgrade-'));
    await chmod(dir, 0o755);
    cluster = await startPostgres();
    doorman = await startDoorman(
      doormanConfigFor(cluster, { users: [SCRAM_USER], poolSize: 10, general: { workers: 2, query_wait_timeout: '30s', shutdown_timeout: '20s' } }),
      { env: { DOORMAN_PID_FILE: pidFile() } },
    );
    current = doorman.pid;
  });

  after(async () => {
    if (current !== 0 && alive(current)) process.kill(current, 'SIGKILL');
    await doorman?.kill('SIGKILL').catch(() => undefined);
    await cluster?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('pgbench -M extended and -M prepared, 100 clients, pool_size 10, 30 s, five upgrades (one by the console UPGRADE): 0 failed, 0 aborted', async () => {
    const script = path.join(dir, 'select.sql');
    await writeFile(script, '\\set aid random(1, 100000)\nSELECT :aid;\n');
    const target = d().target(SCRAM_USER);
    const run = (mode: string): ReturnType<typeof pgbench> =>
      pgbench(target, ['-n', '-f', script, '-M', mode, '-c', '50', '-j', '2', '-T', '30', '-l', `--log-prefix=${path.join(dir, mode)}`], {
        timeoutMs: 90_000,
      });
    const pids = [current];
    const exitTimes: number[] = [];
    const runs = Promise.all([run('extended'), run('prepared')]);
    await sleep(3000);
    for (let i = 0; i < 5; i++) {
      const u = await upgrade(i === 2 ? 'console' : 'signal');
      pids.push(u.pid);
      exitTimes.push(u.exitMs);
      await sleep(1500);
    }
    const results = await runs;
    for (const r of results) {
      assert.equal(r.code, 0, `pgbench failed:\n${r.stdout}\n${r.stderr}`);
      assert.doesNotMatch(r.stderr, /aborted|error/i, r.stderr);
      assert.match(r.stdout, /number of failed transactions: 0 \(0\.000%\)/);
      const processed = /number of transactions actually processed: (\d+)/.exec(r.stdout);
      assert.ok(processed !== null && Number(processed[1]) > 1000, r.stdout);
    }
    assert.equal(new Set(pids).size, 6, `six different processes served: ${pids.join(', ')}`);
    for (const pid of pids.slice(0, 5)) assert.equal(alive(pid), false, `old process ${pid} exited`);
    assert.equal(alive(current), true);
    let maxUs = 0;
    let count = 0;
    for (const f of await readdir(dir)) {
      if (!f.startsWith('extended.') && !f.startsWith('prepared.')) continue;
      for (const rec of parseLog(await readFile(path.join(dir, f), 'utf8'))) {
        assert.notEqual(rec.latencyUs, null, 'no failed transaction in the logs');
        maxUs = Math.max(maxUs, rec.latencyUs ?? 0);
        count++;
      }
    }
    // Figures for the closing note, not assertions on speed.
    console.log(`# upgrade under load: ${count} transactions, max latency ${(maxUs / 1000).toFixed(1)} ms, signal-to-old-exit ${exitTimes.join(', ')} ms`);
  });

  test('200 idle pg connections silent during the upgrade all work afterwards, through the new process', async () => {
    const clients = await Promise.all(Array.from({ length: 200 }, () => connectPg(url())));
    try {
      const st = (i: number): pg.QueryConfig => ({ name: 'idle_st', text: 'select $1::int * 2 as v', values: [i] });
      await Promise.all(clients.map((c) => c.query(st(0))));
      const before = current;
      await upgrade();
      assert.equal(alive(before), false, 'the old process is gone, so every answer below comes from the new one');
      const values = await Promise.all(clients.map((c, i) => c.query<{ v: number }>(st(i))));
      assert.deepEqual(
        values.map((r) => r.rows[0].v),
        clients.map((_, i) => i * 2),
      );
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    }
  });

  test('a client that moved keeps its protocol-level prepared statement and its cancel key', async () => {
    const c = await connectPg(url());
    try {
      await c.query({ name: 'moved_st', text: 'select $1::int + 1 as v', values: [1] });
      await upgrade();
      assert.equal((await c.query<{ v: number }>({ name: 'moved_st', text: 'select $1::int + 1 as v', values: [41] })).rows[0].v, 42);
      const sleeper = new pg.Query('select pg_sleep(30)');
      const outcome = new Promise<string>((resolve) => {
        sleeper.on('error', (err: Error & { code?: string }) => resolve(err.code ?? err.message));
        sleeper.on('end', () => resolve('finished'));
      });
      const t0 = Date.now();
      c.query(sleeper);
      await sleep(300);
      const canceller = new pg.Client({ connectionString: url() }) as unknown as { cancel(client: pg.Client, query: pg.Query): void };
      canceller.cancel(c, sleeper);
      assert.equal(await outcome, '57014');
      assert.ok(Date.now() - t0 < 10_000, `cancelled after ${Date.now() - t0} ms`);
    } finally {
      await c.end();
    }
  });

  test('a config that fails its check is refused; the old process keeps serving', async () => {
    const c = await connectPg(url());
    const valid = await readFile(d().configPath, 'utf8');
    try {
      await c.query('select 1');
      const refusedBefore = logs('upgrade refused; still serving').length;
      await writeFile(d().configPath, valid.replace(/pool_size: 10/, 'pool_size: 0'));
      process.kill(current, 'SIGUSR2');
      await eventually(async () => logs('upgrade refused; still serving').length, (n) => n > refusedBefore, 30_000, 'the upgrade is refused');
      assert.match(String(logs('upgrade refused; still serving')[refusedBefore].err), /pool_size/);
      assert.equal(alive(current), true);
      assert.equal((await c.query<{ v: number }>('select 7 as v')).rows[0].v, 7);
    } finally {
      await writeFile(d().configPath, valid);
      await c.end();
    }
  });

  test('a new binary that exits at start is refused; its clients do not notice', async () => {
    // Passes `check`, then exits before it is ready.
    const bad = path.join(dir, 'bad-doorman.sh');
    await writeFile(bad, '#!/bin/sh\nif [ "$1" = check ]; then exit 0; fi\nexit 3\n');
    await chmod(bad, 0o755);
    const other = await startDoorman(doormanConfigFor(cluster!, { users: [SCRAM_USER], poolSize: 2, general: { workers: 2 } }), {
      env: { DOORMAN_UPGRADE_BINARY: bad },
    });
    const c = await connectPg(other.connectionString(SCRAM_USER.user, SCRAM_USER.password));
    try {
      await c.query('begin');
      process.kill(other.pid, 'SIGUSR2');
      await other.waitForLog(/upgrade refused; still serving/, 30_000);
      const refusal = other.jsonLogs().find((l) => l.msg === 'upgrade refused; still serving');
      assert.match(String(refusal?.err), /exited during start-up/);
      assert.equal((await c.query<{ v: number }>('select 8 as v')).rows[0].v, 8);
      await c.query('commit');
      assert.equal(other.running, true);
    } finally {
      await c.end();
      await other.stop();
    }
  });
});
