/**
 * What a service manager reads about the running process: the pid file (replaced atomically, so a reader
 * never sees it empty or half written) and, under systemd Type=notify, READY / MAINPID (the new process of
 * a binary upgrade becomes the service's main process; the unit needs NotifyAccess=all for that).
 */
import { spawn } from 'node:child_process';
import { renameSync, writeFileSync } from 'node:fs';

export function writePidFile(path: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${process.pid}\n`, { mode: 0o644 });
  renameSync(tmp, path);
}

/** Best effort: Node has no Unix datagram sockets, so systemd-notify sends it. */
export function notifySystemd(): void {
  if (process.env.NOTIFY_SOCKET === undefined) return;
  const child = spawn('systemd-notify', [`--pid=${process.pid}`, `MAINPID=${process.pid}`, '--ready'], { stdio: 'ignore' });
  child.on('error', () => undefined);
  child.unref();
}
