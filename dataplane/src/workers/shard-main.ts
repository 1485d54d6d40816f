/**
 * A worker shard's thread: builds its Shard from the config the main thread sent and binds it to the
 * shared memory, the main thread's port and the shard-to-shard channel.
 */
import { BroadcastChannel, parentPort, workerData } from 'node:worker_threads';
import type { ShardSnapshot } from '../admin/view.js';
import { validateLoaded } from '../config/load.js';
import { createLogger, type LogLevel } from '../log.js';
import { ServerBudget } from '../pool/budget.js';
import { Shard, type ShardBus } from '../shard.js';
import { EpollLoop } from '../io/epoll-loop.js';
import type { AdminControl, BudgetMessage, MainToShard, ShardInit, ShardToMain, SlotTable } from './messages.js';

const init = workerData as ShardInit;
const port = parentPort!;
const send = (m: ShardToMain): void => port.postMessage(m);

const budgetCells = new Int32Array(init.budgetMemory);
const clientCells = new Int32Array(init.clientMemory);
const channel = new BroadcastChannel(init.channel);

let slots = new Map<string, number>(init.slots);
const slotNames = new Map<number, string>();
const budgets = new Map<number, ServerBudget>();
function setSlots(table: SlotTable): void {
  slots = new Map(table);
  for (const [name, slot] of table) slotNames.set(slot, name);
}
setSlots(init.slots);

let nextRequest = 1;
const control = (c: AdminControl): void => send({ t: 'control', control: c });
const pendingSnapshots = new Map<number, (snaps: ShardSnapshot[]) => void>();

const bus: ShardBus = {
  index: init.index,
  shards: init.shards,
  budget(database, user) {
    const slot = slots.get(`${database}\0${user}`);
    if (slot === undefined) throw new Error(`no budget slot for pool ${database}/${user}`);
    let b = budgets.get(slot);
    if (b === undefined) {
      b = new ServerBudget(budgetCells, slot, init.shards, init.index, (sig) => {
        let m: BudgetMessage;
        if (sig.kind === 'evict') m = { t: 'evict', slot, from: sig.from, to: sig.to, count: sig.count };
        else if (sig.kind === 'freed') m = { t: 'freed', slot, from: init.index };
        else m = { t: 'defaults', slot, from: init.index, status: sig.status };
        channel.postMessage(m);
      });
      budgets.set(slot, b);
    }
    return b;
  },
  clientTotal() {
    let n = 0;
    for (let i = 0; i < init.shards; i++) n += Atomics.load(clientCells, i);
    return n;
  },
  clientGone() {
    Atomics.sub(clientCells, init.index, 1);
  },
  snapshots(detail) {
    const id = nextRequest++;
    return new Promise((resolve) => {
      pendingSnapshots.set(id, resolve);
      send({ t: 'snapshots', id, detail });
    });
  },
  controls: {
    pause: (database) => control({ op: 'pause', database }),
    resume: (database) => control({ op: 'resume', database }),
    reconnect: (database) => control({ op: 'reconnect', database }),
    disable: (database) => control({ op: 'disable', database }),
    enable: (database) => control({ op: 'enable', database }),
    kill: (database) => control({ op: 'kill', database }),
    killClient: (id) => control({ op: 'kill_client', id }),
    setLogLevel: (level) => control({ op: 'log_level', level }),
    reload: () => control({ op: 'reload' }),
    shutdown: () => control({ op: 'shutdown' }),
    upgrade: () => control({ op: 'upgrade' }),
  },
  forwardCancel(shard, processId, secretKey) {
    send({ t: 'cancel', shard, processId, secretKey });
  },
  migrate(fd, client) {
    send({ t: 'migrated', fd, client });
  },
  migrationDone() {
    send({ t: 'migrationDone' });
  },
};

const general = init.config.general;
const log = createLogger((init.logLevel ?? general.logLevel) as LogLevel, init.logFormat ?? general.logFormat, { shard: init.index });
// DOORMAN_SHARD_IO=node keeps every socket on Node's loop, DOORMAN_IO_URING=off every send a send(2) of its
// own, and DOORMAN_TLS=node TLS, to clients and to PostgreSQL, on Node's TLSSocket (for comparison, or as a way out).
const io =
  process.env.DOORMAN_SHARD_IO === 'node'
    ? null
    : EpollLoop.start((err) => log.error({ err: err instanceof Error ? err.stack : String(err) }, 'error in the shard event loop'), {
        sendRing: process.env.DOORMAN_IO_URING !== 'off',
      });
const shard = new Shard(validateLoaded(init.config), log, bus, io);

channel.onmessage = (ev: unknown) => {
  const m = (ev as { data: BudgetMessage }).data;
  const name = slotNames.get(m.slot);
  if (name === undefined) return;
  const [database, user] = name.split('\0');
  if (m.t === 'evict') {
    if (m.to === init.index) shard.budgetSignal(database, user, m.count, m.from);
  } else if (m.from === init.index) {
    return;
  } else if (m.t === 'freed') {
    shard.budgetSignal(database, user, 0, m.from);
  } else {
    shard.learnDefaults(database, user, m.status);
  }
};

port.on('message', (m: MainToShard) => {
  switch (m.t) {
    case 'socket':
      return shard.adopt(m.fd, m.address, m.port);
    case 'snapshot':
      return send({ t: 'snapshot', id: m.id, snap: shard.snapshot(m.detail) });
    case 'snapshots': {
      const done = pendingSnapshots.get(m.id);
      pendingSnapshots.delete(m.id);
      return done?.(m.snaps);
    }
    case 'control':
      return shard.control(m.control);
    case 'cancel':
      return shard.cancel(m.processId, m.secretKey, m.final);
    case 'migrate':
      return shard.startMigration();
    case 'adopt':
      return shard.adoptMigrated(m.fd, m.client);
    case 'reload':
      setSlots(m.slots);
      try {
        shard.reload(validateLoaded(m.config));
      } catch (err) {
        log.error({ err: (err as Error).message }, 'shard reload failed; keeping the current configuration');
      }
      return;
    case 'shutdown':
      void shard.shutdown(m.graceful).then(() => {
        channel.close();
        send({ t: 'exited' });
      });
      return;
  }
});

log.info(
  {
    io: io === null ? 'node' : 'epoll',
    sends: io === null ? 'node' : io.batchesSends ? 'io_uring' : 'send',
    tls: shard.clientSsl !== null ? 'openssl' : shard.clientTls !== null ? 'node' : 'off',
  },
  'shard started',
);
send({ t: 'ready' });
