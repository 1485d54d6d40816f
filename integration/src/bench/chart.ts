import { TARGET_LABELS, type CellResult, type TargetName, type TargetRun } from './types.js';

/** chart.svg: grouped bars per cell (Doorman, PgBouncer, direct), one panel for TPS and one for p99 latency. */

export const SERIES: readonly { target: TargetName; color: string }[] = [
  { target: 'doorman', color: '#1b7f5f' },
  { target: 'pgbouncer', color: '#3b6fb6' },
  { target: 'direct', color: '#9a9a9a' },
];

const BAR_WIDTH = 14;
const GROUP_GAP = 16;
const GROUP_WIDTH = SERIES.length * BAR_WIDTH + GROUP_GAP;
// Room on the left for the first cell's slanted label as well as the tick labels.
const LEFT = 150;
const RIGHT = 20;
const PLOT_HEIGHT = 200;
const PANEL_TITLE = 28;
const LABEL_SPACE = 150;
const PANEL_HEIGHT = PANEL_TITLE + PLOT_HEIGHT + LABEL_SPACE;
const LEGEND_HEIGHT = 40;
const TICKS = 4;
const LEGEND_STEP = 110;

/** The smallest 1, 2, 2.5 or 5 × 10^k that is ≥ value (1 for nothing to show). */
export function niceMax(value: number): number {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    // Rounding guards against 0.1 * 3 style float error making 3 look larger than 3.
    const candidate = Number((step * magnitude).toPrecision(12));
    if (candidate >= value) return candidate;
  }
  return 10 * magnitude;
}

/** Tick label: 20000 -> "20k", 2500 -> "2.5k", 0.25 -> "0.25". */
export function tickLabel(value: number): string {
  if (value >= 1000) return `${Number((value / 1000).toPrecision(3))}k`;
  return String(Number(value.toPrecision(3)));
}

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

interface Panel {
  title: string;
  value: (run: TargetRun) => number | null;
}

const PANELS: readonly Panel[] = [
  { title: 'TPS (higher is better)', value: (r) => r.tps },
  { title: 'p99 latency, ms (lower is better)', value: (r) => r.p99Ms },
];

function r1(value: number): string {
  return String(Math.round(value * 10) / 10);
}

function renderPanel(cells: readonly CellResult[], panel: Panel, top: number, plotWidth: number): string[] {
  const out: string[] = [];
  const valueOf = (run: TargetRun | undefined): number | null => (run?.status === 'ok' ? panel.value(run) : null);
  const values = cells.flatMap((c) => SERIES.map((s) => valueOf(c.runs.find((r) => r.target === s.target)))).filter((v): v is number => v !== null);
  const max = niceMax(Math.max(0, ...values));
  const plotTop = top + PANEL_TITLE;
  const baseline = plotTop + PLOT_HEIGHT;
  out.push(`<text x="${LEFT}" y="${top + 18}" class="title">${escapeXml(panel.title)}</text>`);
  for (let i = 0; i <= TICKS; i++) {
    const value = (max * i) / TICKS;
    const y = baseline - (PLOT_HEIGHT * i) / TICKS;
    out.push(`<line x1="${LEFT}" y1="${r1(y)}" x2="${LEFT + plotWidth}" y2="${r1(y)}" class="grid"/>`);
    out.push(`<text x="${LEFT - 6}" y="${r1(y + 4)}" class="tick">${tickLabel(value)}</text>`);
  }
  cells.forEach((cell, index) => {
    const groupX = LEFT + GROUP_GAP / 2 + index * GROUP_WIDTH;
    SERIES.forEach((series, s) => {
      const x = groupX + s * BAR_WIDTH;
      const run = cell.runs.find((r) => r.target === series.target);
      const value = valueOf(run);
      if (value !== null) {
        const height = (PLOT_HEIGHT * value) / max;
        out.push(
          `<rect x="${x}" y="${r1(baseline - height)}" width="${BAR_WIDTH - 2}" height="${r1(height)}" fill="${series.color}">` +
            `<title>${escapeXml(`${cell.cell.id} ${TARGET_LABELS[series.target]}: ${Number(value.toPrecision(4))}`)}</title></rect>`,
        );
      } else if (run && run.status !== 'ok') {
        // No bar: say why at the baseline instead of leaving a silent gap.
        const mark = run.status === 'skipped' ? 'S' : 'F';
        out.push(`<text x="${x + (BAR_WIDTH - 2) / 2}" y="${baseline - 4}" class="mark" fill="${series.color}">${mark}</text>`);
      }
    });
    const labelX = groupX + (SERIES.length * BAR_WIDTH) / 2;
    out.push(`<text transform="translate(${labelX},${baseline + 12}) rotate(-45)" class="label">${escapeXml(cell.cell.id)}</text>`);
  });
  out.push(`<line x1="${LEFT}" y1="${baseline}" x2="${LEFT + plotWidth}" y2="${baseline}" class="axis"/>`);
  return out;
}

export function renderChart(cells: readonly CellResult[]): string {
  const plotWidth = Math.max(1, cells.length) * GROUP_WIDTH;
  const legendWidth = LEFT + SERIES.length * LEGEND_STEP + 170;
  const width = Math.max(LEFT + plotWidth + RIGHT, legendWidth);
  const height = LEGEND_HEIGHT + PANELS.length * PANEL_HEIGHT;
  const legend = SERIES.map((s, i) => {
    const x = LEFT + i * LEGEND_STEP;
    return `<rect x="${x}" y="12" width="12" height="12" fill="${s.color}"/><text x="${x + 16}" y="22" class="legend">${TARGET_LABELS[s.target]}</text>`;
  });
  legend.push(`<text x="${LEFT + SERIES.length * LEGEND_STEP}" y="22" class="legend">F = failed, S = skipped</text>`);
  const panels = PANELS.flatMap((panel, i) => renderPanel(cells, panel, LEGEND_HEIGHT + i * PANEL_HEIGHT, plotWidth));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    '<style>.title{font-size:14px;font-weight:bold}.tick{font-size:11px;text-anchor:end;fill:#444}.label{font-size:11px;text-anchor:end;fill:#222}' +
      '.legend{font-size:12px}.mark{font-size:10px;text-anchor:middle;font-weight:bold}.grid{stroke:#e4e4e4}.axis{stroke:#444}</style>',
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    ...legend,
    ...panels,
    '</svg>',
    '',
  ].join('\n');
}
