import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import test from 'node:test';

/**
 * A child process starts a worker that fills and drops 400,000 objects and collects them (a full GC arms the
 * memory reducer's 8 s timer), then idles. It prints 'reducer' at the first major GC with callback flag 32
 * (kGCCallbackFlagCollectAllExternalMemory, the reducer's mark), or 'quiet' when a line arrives on stdin or
 * after `idleMs`. Only the tuned child applies the shard flags before the worker.
 */
const CHILD = `
import { Worker } from 'node:worker_threads';
const [tuned, idleMs] = [process.argv[1] === 'tuned', Number(process.argv[2])];
if (tuned) (await import(${JSON.stringify(new URL('./heap-flags.js', import.meta.url).href)})).applyShardHeapFlags();
const w = new Worker(\`
  const { PerformanceObserver } = require('node:perf_hooks');
  const { parentPort } = require('node:worker_threads');
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (e.detail.kind === 4 && (e.detail.flags & 32) !== 0) parentPort.postMessage('reducer');
  }).observe({ entryTypes: ['gc'] });
  let keep = [];
  for (let i = 0; i < 400000; i++) keep.push({ i, s: 'x' + i });
  setTimeout(() => { keep = null; gc(); }, 300);
  const quiet = () => parentPort.postMessage('quiet');
  setTimeout(quiet, \${idleMs});
  parentPort.on('message', quiet);
\`, { eval: true, execArgv: [] });
process.stdin.once('data', () => w.postMessage('report'));
w.once('message', (m) => { console.log(m); process.exit(0); });
`;

interface Child {
  outcome: Promise<string>;
  report(): void;
}

function child(tuned: boolean, idleMs: number): Child {
  const c = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', CHILD, tuned ? 'tuned' : 'plain', String(idleMs)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  c.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const outcome = new Promise<string>((resolve, reject) => {
    c.on('error', reject);
    c.on('exit', () => resolve(out.trim()));
  });
  return { outcome, report: () => c.stdin.end('report\n') };
}

test('shard isolates get no memory-reducer GC after a burst of allocation goes quiet', async () => {
  const plain = child(false, 45_000);
  const tuned = child(true, 90_000);
  assert.equal(await plain.outcome, 'reducer', 'without the flags, the memory reducer runs a full GC once allocation stops');
  // The tuned child has idled as long as the plain one took, and one more reducer period.
  await new Promise((resolve) => setTimeout(resolve, 9000));
  tuned.report();
  assert.equal(await tuned.outcome, 'quiet');
});
