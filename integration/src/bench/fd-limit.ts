import { readFile } from 'node:fs/promises';
import { run } from '../harness/index.js';

/** The open-files limit, from /proc/<pid>/limits and raised with util-linux prlimit. */

export interface FileLimit {
  soft: number;
  hard: number;
}

/** "Max open files  1024  4096  files" from /proc/<pid>/limits; unlimited is Infinity. */
export function parseOpenFilesLimit(limits: string): FileLimit | null {
  const match = /^Max open files\s+(\S+)\s+(\S+)\s+files/m.exec(limits);
  if (!match?.[1] || !match[2]) return null;
  const value = (text: string): number => (text === 'unlimited' ? Infinity : Number(text));
  return { soft: value(match[1]), hard: value(match[2]) };
}

export async function readOpenFilesLimit(pid: number | 'self' = 'self'): Promise<FileLimit | null> {
  const text = await readFile(`/proc/${pid}/limits`, 'utf8').catch(() => null);
  return text === null ? null : parseOpenFilesLimit(text);
}

/**
 * Raises this process's soft and hard limit to at least `wanted`, so the
 * servers and clients it starts afterwards inherit it. Returns the limit now
 * in force and, when raising failed, why.
 */
export async function raiseOwnOpenFiles(wanted: number): Promise<{ limit: FileLimit | null; error: string | null }> {
  const before = await readOpenFilesLimit();
  if (before && before.soft >= wanted && before.hard >= wanted) return { limit: before, error: null };
  const result = await run('prlimit', ['--pid', String(process.pid), `--nofile=${wanted}:${wanted}`], { timeoutMs: 10_000 });
  const limit = await readOpenFilesLimit();
  const error = result.code === 0 ? null : result.stderr.trim() || `prlimit exited with ${String(result.code)}`;
  return { limit, error };
}
