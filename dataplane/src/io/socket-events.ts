/**
 * The events of a RawSocket ('end', 'error', 'close', 'drain') with EventEmitter's semantics for what the
 * sessions use: on, once, removeAllListeners, and an 'error' nobody listens to is thrown. EventEmitter keeps
 * its listeners in a null-prototype object, which V8 holds as a dictionary: about 300 bytes per socket, and
 * a shard may hold thousands of idle ones.
 */
type Listener = (...args: any[]) => void;

export class SocketEvents {
  /** Flat triples in registration order: event, listener, once. */
  private listeners: (string | Listener | boolean)[] = [];

  on(event: string, listener: Listener): this {
    this.listeners.push(event, listener, false);
    return this;
  }

  once(event: string, listener: Listener): this {
    this.listeners.push(event, listener, true);
    return this;
  }

  removeAllListeners(event?: string): this {
    this.listeners = event === undefined ? [] : this.without((e) => e === event);
    return this;
  }

  /** Calls the listeners registered for `event` when it is raised; ones added meanwhile wait for the next. */
  protected emit(event: string, arg?: unknown): boolean {
    const l = this.listeners;
    const due: Listener[] = [];
    let onceSeen = false;
    for (let i = 0; i < l.length; i += 3) {
      if (l[i] !== event) continue;
      due.push(l[i + 1] as Listener);
      if (l[i + 2] === true) onceSeen = true;
    }
    if (onceSeen) this.listeners = this.without((e, once) => e === event && once);
    if (due.length === 0) {
      if (event === 'error') throw arg;
      return false;
    }
    for (const fn of due) fn.call(this, arg);
    return true;
  }

  private without(drop: (event: string, once: boolean) => boolean): (string | Listener | boolean)[] {
    const l = this.listeners;
    const kept: (string | Listener | boolean)[] = [];
    for (let i = 0; i < l.length; i += 3) if (!drop(l[i] as string, l[i + 2] as boolean)) kept.push(l[i], l[i + 1], l[i + 2]);
    return kept;
  }
}
