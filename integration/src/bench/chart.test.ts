import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeXml, niceMax, renderChart, tickLabel } from './chart.js';
import { sampleCells } from './fixtures.js';

test('niceMax rounds up to 1, 2, 2.5 or 5 times a power of ten', () => {
  assert.equal(niceMax(141483), 200000);
  assert.equal(niceMax(40000), 50000);
  assert.equal(niceMax(21000), 25000);
  assert.equal(niceMax(20000), 20000);
  assert.equal(niceMax(12.5), 20);
  assert.equal(niceMax(0.3), 0.5);
  assert.equal(niceMax(0), 1);
});

test('tick labels are short', () => {
  assert.equal(tickLabel(50000), '50k');
  assert.equal(tickLabel(12500), '12.5k');
  assert.equal(tickLabel(0.25), '0.25');
  assert.equal(tickLabel(0), '0');
});

test('escapeXml escapes markup characters', () => {
  assert.equal(escapeXml('a<b>&"c"'), 'a&lt;b&gt;&amp;&quot;c&quot;');
});

test('bars are scaled against the panel maximum; failures and skips are marked, not drawn', () => {
  const svg = renderChart(sampleCells());
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg" width="650" height="796"'));
  const bars = svg.match(/<rect x="[^"]+" y="[^"]+" width="12" height="[^"]+" fill="[^"]+">/g) ?? [];
  // Three ok runs in the first cell, in each of the two panels.
  assert.equal(bars.length, 6);
  // TPS panel: max 40000 -> scale 50000 over 200 px; baseline at 40 + 28 + 200 = 268.
  assert.ok(svg.includes('<rect x="158" y="208" width="12" height="60" fill="#1b7f5f"><title>select-only/simple/c100 Doorman: 15000</title></rect>'));
  assert.ok(svg.includes('<rect x="186" y="108" width="12" height="160" fill="#9a9a9a"><title>select-only/simple/c100 direct: 40000</title></rect>'));
  // p99 panel: max 12.5 -> scale 20; PgBouncer 1.5 ms is 15 px tall on the baseline at 40 + 378 + 228 = 646.
  assert.ok(svg.includes('<rect x="172" y="631" width="12" height="15" fill="#3b6fb6"><title>select-only/simple/c100 PgBouncer: 1.5</title></rect>'));
  assert.equal((svg.match(/class="mark"[^>]*>F</g) ?? []).length, 4);
  assert.equal((svg.match(/class="mark"[^>]*>S</g) ?? []).length, 2);
  assert.ok(svg.includes('>50k</text>'));
  assert.ok(svg.trimEnd().endsWith('</svg>'));
});
