/**
 * Agent mode's process wiring: start the agent, wait up to --initial-wait for the control plane's first
 * config, else serve the last-known-good one; signals as in file mode (SIGHUP re-applies the current
 * version, SIGTERM graceful, SIGINT fast).
 */
import type { Logger } from 'pino';
import { Agent } from './agent.js';
import type { AgentHost, MakeHost } from './host.js';
import type { AgentOptions } from './options.js';
import { StateStore, type LastKnownGood } from './state-store.js';

export interface RunningAgent {
  agent: Agent;
  host: AgentHost;
  /** Stops the agent and the host; resolves when every connection is closed. */
  stop(graceful: boolean): Promise<void>;
}

/** Starts agent mode; resolves once the initial wait is over (serving, or still waiting for a first config). */
export async function runAgent(opts: AgentOptions, log: Logger, makeHost: MakeHost): Promise<RunningAgent> {
  const store = opts.stateDir === null ? null : new StateStore(opts.stateDir);
  let stopping: Promise<void> | null = null;
  const stop = (graceful: boolean): Promise<void> => {
    if (stopping === null) {
      agent.stop();
      stopping = host.shutdown(graceful);
    }
    return stopping;
  };
  const exit = (graceful: boolean): void => {
    void stop(graceful).then(() => {
      log.info('bye');
      process.exit(0);
    });
  };
  const host = makeHost({ reload: () => void agent.reload(), shutdown: () => exit(true) });
  const agent = new Agent(opts, log, host, store);
  process.on('SIGTERM', () => exit(true));
  process.on('SIGINT', () => exit(false));
  process.on('SIGHUP', () => void agent.reload());

  log.info({ controlPlane: opts.addresses, nodeId: opts.nodeId, labels: opts.labels, tls: opts.tls !== null }, 'agent mode: subscribing to the control plane');
  agent.start();
  if (await agent.whenConfigured(opts.initialWaitMs)) return { agent, host, stop };

  let lkg: LastKnownGood | null = null;
  try {
    lkg = store?.load() ?? null;
  } catch (err) {
    log.error({ err: (err as Error).message }, 'the last-known-good state cannot be read');
  }
  if (lkg === null) {
    log.warn({ waitedMs: opts.initialWaitMs }, 'no config from the control plane yet and no last-known-good config; not serving until one arrives');
  } else {
    await agent.bootFrom(lkg);
  }
  return { agent, host, stop };
}
