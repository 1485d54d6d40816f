import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageQueue } from './message-queue.js';

const chunk = Buffer.from('Qselect 1;\0Sxyz\0Pabc');

function contents(q: MessageQueue): [string, boolean][] {
  const out: [string, boolean][] = [];
  for (let i = 0; i < q.length; i++) out.push([q.buf(i).toString('latin1', q.start(i), q.end(i)), q.whole(i)]);
  return out;
}

test('messages are kept as ranges of their chunk, in order, with their byte count', () => {
  const q = new MessageQueue();
  q.push(chunk, 0, 11, true);
  q.push(chunk, 11, 16, true);
  q.push(chunk, 16, 20, false);
  assert.deepEqual(contents(q), [['Qselect 1;\0', true], ['Sxyz\0', true], ['Pabc', false]]);
  assert.equal(q.bytes, 20);
  assert.equal(q.code(1), 'S'.charCodeAt(0));
  assert.equal(q.allWhole, false);
  assert.deepEqual(q.views().map((v) => v.toString('latin1')), ['Qselect 1;\0', 'Sxyz\0', 'Pabc']);
});

test('dropFirst keeps the rest in order and their bytes; dropping more than there is empties it', () => {
  const q = new MessageQueue();
  q.push(chunk, 0, 11, true);
  q.push(chunk, 11, 16, true);
  q.push(chunk, 16, 20, true);
  q.dropFirst(1);
  assert.deepEqual(contents(q), [['Sxyz\0', true], ['Pabc', true]]);
  assert.equal(q.bytes, 9);
  assert.equal(q.allWhole, true);
  q.push(chunk, 0, 1, true);
  assert.deepEqual(contents(q), [['Sxyz\0', true], ['Pabc', true], ['Q', true]]);
  q.dropFirst(5);
  assert.equal(q.length, 0);
  assert.equal(q.bytes, 0);
});

test('a cleared queue is reused from the start', () => {
  const q = new MessageQueue();
  q.push(chunk, 0, 11, true);
  q.push(chunk, 11, 16, false);
  q.clear();
  assert.deepEqual([q.length, q.bytes, q.allWhole], [0, 0, true]);
  q.push(chunk, 16, 20, true);
  assert.deepEqual(contents(q), [['Pabc', true]]);
  assert.equal(q.bytes, 4);
});
