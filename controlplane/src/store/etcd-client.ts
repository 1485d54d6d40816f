import { Etcd3, type IOptions } from 'etcd3';

type FaultHandling = NonNullable<IOptions['faultHandling']>;
type Policy = NonNullable<FaultHandling['global']>;
type Backoff = NonNullable<FaultHandling['watchBackoff']>;

const noEvent = (): { dispose(): void } => ({ dispose() {} });

/**
 * Runs each call once. The library's defaults (three retries, then a 5 s circuit breaker) would hide
 * an outage behind long stalls and keep failing for seconds after etcd is back; the control plane
 * retries where it means to (the lease loop, the node recorder, the watch).
 */
const direct = {
  onSuccess: noEvent,
  onFailure: noEvent,
  // async: the library expects a rejected promise, never a synchronous throw, from execute().
  execute: async <T>(fn: (context: { signal: AbortSignal; attempt: number }) => PromiseLike<T> | T) =>
    fn({ signal: new AbortController().signal, attempt: 0 }),
} as unknown as Policy;

/** Watch reconnects: 250 ms doubling to at most 1 s (the library caps at 30 s, too slow to catch up). */
function watchBackoff(duration = 250): Backoff {
  return { duration, next: () => watchBackoff(Math.min(duration * 2, 1_000)) } as unknown as Backoff;
}

export interface EtcdClientOptions {
  /** host:port or URLs. */
  endpoints: readonly string[];
  /** Deadline for unary calls. */
  callTimeoutMs: number;
}

export function createEtcdClient(options: EtcdClientOptions): Etcd3 {
  const hosts = options.endpoints.map((e) => (/^https?:\/\//.test(e) ? e : `http://${e}`));
  return new Etcd3({
    hosts,
    dialTimeout: options.callTimeoutMs,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + options.callTimeoutMs }),
    faultHandling: { host: () => direct, global: direct, watchBackoff: watchBackoff() },
  });
}
