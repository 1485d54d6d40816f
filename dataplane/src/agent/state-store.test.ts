import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentError } from './errors.js';
import { StateStore } from './state-store.js';

function tempDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'doorman-state-test-'));
}

test('saves config and secrets 0600, replaces them whole, leaves no temp files, loads them back', () => {
  const dir = tempDir();
  try {
    const store = new StateStore(path.join(dir, 'nested'));
    assert.equal(store.load(), null);
    store.saveConfig({ version: 1, documentJson: '{"a":1}' });
    store.saveConfig({ version: 2, documentJson: '{"a":2}' });
    assert.deepEqual(store.load(), { config: { version: 2, documentJson: '{"a":2}' }, secrets: null });
    store.saveSecrets({ version: 3, users: [{ database: 'd', username: 'u', password: 'p', serverPassword: '' }], adminPassword: '' });
    assert.equal(store.load()?.secrets?.version, 3);
    assert.deepEqual(readdirSync(store.dir).sort(), ['config.json', 'secrets.json']);
    for (const f of ['config.json', 'secrets.json']) assert.equal(statSync(path.join(store.dir, f)).mode & 0o777, 0o600);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a damaged state file is reported, not silently ignored', () => {
  const dir = tempDir();
  try {
    writeFileSync(path.join(dir, 'config.json'), '{"version":1,');
    assert.throws(() => new StateStore(dir).load(), (e: unknown) => e instanceof AgentError && e.code === 'DM_AGENT_STATE_UNREADABLE');
    writeFileSync(path.join(dir, 'config.json'), '{"version":0,"documentJson":"{}"}');
    assert.throws(() => new StateStore(dir).load(), /does not hold a stored config/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
