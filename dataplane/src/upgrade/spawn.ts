/**
 * Starting the new binary of a binary upgrade: check it with the current config first (`doorman check`),
 * then spawn it with an IPC channel (advanced serialization, so Buffers and socket handles travel) and
 * wait, bounded, for it to say it is ready.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { UPGRADE_ENV, type NewToOld } from './messages.js';

export interface UpgradeTarget {
  /** The binary (or launcher script) to start; default: the one this process was started from. */
  binary: string;
  /** This process's arguments, given to the new one unchanged. */
  args: string[];
  /** The config file, checked with the new binary before anything else; null in agent mode. */
  configPath: string | null;
}

/** How to run `binary`: a .js launcher through this Node, anything else directly. */
function command(binary: string, args: string[]): [string, string[]] {
  return binary.endsWith('.js') ? [process.execPath, [binary, ...args]] : [binary, args];
}

/** Runs `binary check CONFIG` (or `--version` without a config); throws with its output when it fails. */
export function checkTarget(t: UpgradeTarget): void {
  const [cmd, args] = command(t.binary, t.configPath === null ? ['--version'] : ['check', t.configPath]);
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error !== undefined) throw new Error(`cannot run ${t.binary}: ${r.error.message}`);
  if (r.status !== 0) {
    const out = `${r.stderr}${r.stdout}`.trim().split('\n').slice(0, 10).join('; ');
    throw new Error(`${t.binary} ${args.join(' ')} failed (exit ${r.status ?? r.signal}): ${out}`);
  }
}

/** Spawns the new process and resolves once it reports ready; kills it and rejects on exit or timeout. */
export function startNewProcess(t: UpgradeTarget, timeoutMs: number, onSpawned: (child: ChildProcess) => void): Promise<ChildProcess> {
  const [cmd, args] = command(t.binary, t.args);
  const child = spawn(cmd, args, {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
    env: { ...process.env, [UPGRADE_ENV]: '1' },
  });
  onSpawned(child);
  return new Promise((resolve, reject) => {
    const fail = (why: string): void => {
      clearTimeout(timer);
      child.removeListener('message', onMessage);
      child.kill('SIGKILL');
      reject(new Error(why));
    };
    const timer = setTimeout(() => fail(`the new process did not become ready within ${timeoutMs} ms`), timeoutMs);
    const onMessage = (m: NewToOld): void => {
      if (m.t !== 'ready') return;
      clearTimeout(timer);
      child.removeListener('exit', onExit);
      child.removeListener('message', onMessage);
      resolve(child);
    };
    const onExit = (code: number | null, signal: string | null): void => fail(`the new process exited during start-up (${code ?? signal})`);
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.once('error', (err) => fail(`cannot start the new process: ${err.message}`));
  });
}
