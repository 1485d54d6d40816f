import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DONATE_AFTER_TICKS, ServerBudget, slotStride, type BudgetSignal } from './budget.js';

/** Two shards' views of slot 1 of the same shared memory, recording the signals each sends. */
function pair(): { a: ServerBudget; b: ServerBudget; sent: { from: string; s: BudgetSignal }[] } {
  const cells = new Int32Array(new SharedArrayBuffer(3 * slotStride(2) * 4));
  const sent: { from: string; s: BudgetSignal }[] = [];
  return {
    a: new ServerBudget(cells, 1, 2, 0, (s) => sent.push({ from: 'a', s })),
    b: new ServerBudget(cells, 1, 2, 1, (s) => sent.push({ from: 'b', s })),
    sent,
  };
}

test('the cap holds over both shards: tryTake stops at the limit until a release', () => {
  const { a, b } = pair();
  assert.equal(a.tryTake(3), true);
  assert.equal(b.tryTake(3), true);
  assert.equal(a.tryTake(3), true);
  assert.equal(b.tryTake(3), false);
  assert.equal(a.tryTake(3), false);
  assert.equal(a.open, 3);
  b.release();
  assert.equal(b.open, 2);
  assert.equal(b.tryTake(3), true);
  // A higher limit (the reserve pool) lets one more in.
  assert.equal(a.tryTake(4), true);
  assert.equal(a.open, 4);
});

test('a release signals "freed" only when another shard has waiters', () => {
  const { a, b, sent } = pair();
  a.tryTake(1);
  a.release();
  assert.deepEqual(sent, []);
  a.tryTake(1);
  b.publish(0, 2, 0);
  a.release();
  assert.deepEqual(sent, [{ from: 'a', s: { kind: 'freed' } }]);
});

test('askForIdle asks the shard with idle connections, once until answered or 50 ms pass', () => {
  const { a, b, sent } = pair();
  assert.equal(a.askForIdle(2, 1000), false, 'nobody holds idle connections');
  b.publish(3, 0, 3);
  assert.equal(a.askForIdle(5, 1000), true);
  assert.deepEqual(sent, [{ from: 'a', s: { kind: 'evict', from: 0, to: 1, count: 3 } }]);
  assert.equal(a.askForIdle(5, 1020), false, 'a request is in flight');
  assert.equal(a.askForIdle(1, 1051), true, 'the request timed out');
  a.answered();
  assert.equal(a.askForIdle(1, 1052), true);
  assert.deepEqual(sent.map((x) => x.s), [
    { kind: 'evict', from: 0, to: 1, count: 3 },
    { kind: 'evict', from: 0, to: 1, count: 1 },
    { kind: 'evict', from: 0, to: 1, count: 1 },
  ]);
});

/** shouldDonate after `a` has seen the same gauges for DONATE_AFTER_TICKS ticks. */
function donatesAfterTicks(a: ServerBudget, limit: number): boolean {
  for (let i = 0; i < DONATE_AFTER_TICKS; i++) a.tick(limit);
  return a.shouldDonate(limit);
}

test('shares follow demand: shouldDonate only from a shard above its share to a waiting one below it', () => {
  const { a, b } = pair();
  a.publish(0, 0, 5);
  b.publish(0, 0, 5);
  a.publishDemand(8);
  b.publishDemand(8);
  assert.equal(donatesAfterTicks(a, 10), false, 'nobody waits');
  b.publish(0, 3, 5);
  assert.equal(donatesAfterTicks(a, 10), false, 'b waits, but both hold their share');
  // a holds 7 of 10 with the same demand as b (holding 3): a gives one up.
  a.publish(0, 0, 7);
  b.publish(0, 4, 3);
  assert.equal(donatesAfterTicks(a, 10), true);
  // Demand moved to a (12 vs 4): its share is 7.5, so it keeps its 7.
  a.publishDemand(12);
  b.publishDemand(4);
  assert.equal(donatesAfterTicks(a, 10), false);
  // 6 / 4 with equal demand settles at 5 / 5; 6 / 5 leaves b within one of its share: keep.
  a.publishDemand(8);
  b.publishDemand(8);
  a.publish(0, 5, 6);
  b.publish(0, 5, 4);
  assert.equal(donatesAfterTicks(a, 10), true);
  b.publish(0, 5, 5);
  assert.equal(a.shouldDonate(10), false, 'no longer short: at once, without a tick');
});

test('a connection moves only once the shares have been apart for DONATE_AFTER_TICKS ticks in a row', () => {
  const { a, b } = pair();
  a.publishDemand(8);
  b.publishDemand(8);
  a.publish(0, 5, 6);
  b.publish(0, 5, 4);
  assert.equal(a.shouldDonate(10), false, 'no tick has seen it yet');
  for (let i = 1; i < DONATE_AFTER_TICKS; i++) {
    a.tick(10);
    assert.equal(a.shouldDonate(10), false, `after ${i} tick(s)`);
  }
  // Demand noise for one tick (b's share dips to 4.4) starts the count again.
  b.publishDemand(7);
  a.tick(10);
  b.publishDemand(8);
  for (let i = 1; i < DONATE_AFTER_TICKS; i++) a.tick(10);
  assert.equal(a.shouldDonate(10), false, 'the streak was broken');
  a.tick(10);
  assert.equal(a.shouldDonate(10), true);
});

test('owesSlot: a shard at its share leaves a free slot to a waiting shard one or more below its share', () => {
  const { a, b } = pair();
  a.publishDemand(8);
  b.publishDemand(8);
  b.publish(0, 4, 4);
  // Equal demand, limit 10: shares 5 / 5. a just closed one of its 6 for b (holding 4), and has waiters too.
  assert.equal(a.owesSlot(10, 5, false), true);
  assert.equal(a.owesSlot(10, 4, false), false, 'a below its share takes the slot');
  b.publish(0, 4, 5);
  assert.equal(a.owesSlot(10, 5, false), false, 'b holds its share');
  b.publish(0, 0, 4);
  assert.equal(a.owesSlot(10, 5, false), false, 'b does not wait');
  b.publish(0, 4, 4);
  a.publishDemand(0);
  b.publishDemand(0);
  assert.equal(a.owesSlot(10, 5, false), false, 'no demand measured yet: no shares to go by');
});

test('owesSlot: a starving shard gets a free slot first, unless the asking shard holds none and gave none up', () => {
  const { a, b } = pair();
  b.publish(0, 3, 0);
  // No demand measured yet: the starving and donated rules alone decide.
  assert.equal(a.owesSlot(1, 1, false), true, 'a still holds one and can serve its own waiters');
  assert.equal(a.owesSlot(1, 0, true), true, 'a just closed its only one for b: b opens it');
  assert.equal(a.owesSlot(1, 0, false), false, 'both starving: a takes it rather than neither');
  b.publish(0, 3, 1);
  assert.equal(a.owesSlot(3, 1, false), false, 'b holds one now');
  assert.equal(a.owesSlot(3, 1, true), true, 'a just gave one up for b, which still waits');
  b.publish(0, 0, 1);
  assert.equal(a.owesSlot(3, 1, true), false, 'b no longer waits');
});

test('starving: a shard with clients waiting and no connection; othersStarving never counts the asking shard', () => {
  const cells = new Int32Array(new SharedArrayBuffer(slotStride(3) * 4));
  const [a, b, c] = [0, 1, 2].map((i) => new ServerBudget(cells, 0, 3, i, () => undefined));
  a.publish(1, 0, 1);
  b.publish(0, 2, 1);
  c.publish(0, 0, 0);
  assert.equal(a.starving(1), false, 'b waits but holds one');
  assert.equal(a.starving(2), false, 'c holds none but nobody waits there');
  assert.equal(a.othersStarving(), false);
  c.publish(0, 1, 0);
  assert.equal(a.starving(2), true);
  assert.equal(a.othersStarving(), true);
  assert.equal(c.othersStarving(), false, 'never itself');
});

test('hasSurplus: at least one connection beyond the share by demand; with no demand anywhere, any connection', () => {
  const { a, b } = pair();
  a.publish(0, 0, 1);
  assert.equal(a.hasSurplus(10), true, 'no demand anywhere');
  a.publish(0, 0, 0);
  assert.equal(a.hasSurplus(10), false);
  // Shares 7.5 and 2.5 of 10.
  a.publishDemand(12);
  b.publishDemand(4);
  a.publish(0, 0, 8);
  assert.equal(a.hasSurplus(10), false, '8 is half a connection above 7.5');
  a.publish(0, 0, 9);
  assert.equal(a.hasSurplus(10), true, '9 is one and a half above');
  b.publish(0, 0, 3);
  assert.equal(b.hasSurplus(10), false);
  b.publish(0, 0, 4);
  assert.equal(b.hasSurplus(10), true, 'exactly 1.5 above 2.5');
  a.publish(0, 0, 8);
  a.publishDemand(14);
  b.publishDemand(2);
  // Share 8.75 with demand 224 / 256 (scaled by 16): 8 is below, 10 is 1.25 above.
  assert.equal(a.hasSurplus(10), false);
  a.publish(0, 0, 10);
  assert.equal(a.hasSurplus(10), true);
  // Equal demand, shares 5 and 5: exactly one above counts.
  a.publishDemand(8);
  b.publishDemand(8);
  a.publish(0, 0, 6);
  assert.equal(a.hasSurplus(10), true);
  a.publish(0, 0, 5);
  assert.equal(a.hasSurplus(10), false);
});
