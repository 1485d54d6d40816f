import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lostByPool, ServerPoolState, type ServerUse } from './members.js';

const unused: ServerUse = { poolState: ServerPoolState.Closed, ready: true, runningInternal: false, cancelsInFlight: 0, claimed: false };

test('a logged-in connection outside the idle list that nobody uses is lost, in whichever state the pool left it', () => {
  for (const poolState of [ServerPoolState.Closed, ServerPoolState.Active, ServerPoolState.Resetting, ServerPoolState.Opening]) {
    assert.equal(lostByPool({ ...unused, poolState }), true, `state ${poolState}`);
  }
});

test('a connection idle, claimed, busy with its own queries or cancels, or not logged in is not lost', () => {
  assert.equal(lostByPool({ ...unused, poolState: ServerPoolState.Idle }), false);
  assert.equal(lostByPool({ ...unused, poolState: ServerPoolState.Active, claimed: true }), false);
  assert.equal(lostByPool({ ...unused, poolState: ServerPoolState.Resetting, runningInternal: true }), false);
  assert.equal(lostByPool({ ...unused, poolState: ServerPoolState.Resetting, cancelsInFlight: 1 }), false);
  assert.equal(lostByPool({ ...unused, poolState: ServerPoolState.Opening, ready: false }), false);
});
