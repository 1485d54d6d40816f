import type { Protocol, RunStatus } from './types.js';

/** What `--io-floor` measured (see io-floor.ts); also its raw.json. */
export interface FloorRun {
  label: string;
  protocol: Protocol;
  round: number;
  status: RunStatus;
  reason: string | null;
  tps: number | null;
  cpuUsPerTx: number | null;
}

export interface FloorResults {
  command: string;
  durationSeconds: number;
  clients: number;
  /** Targets in the order they ran; the first is the one ratios are taken against. */
  labels: string[];
  runs: FloorRun[];
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function figure(value: number | null, digits: number): string {
  return value === null ? '–' : value.toFixed(digits);
}

/** A markdown table: per protocol and target, every round's CPU µs per transaction and TPS, medians, ratios. */
export function renderIoFloorReport(results: FloorResults): string {
  const reference = results.labels[0];
  const protocols = [...new Set(results.runs.map((r) => r.protocol))];
  const lines = [
    `# Node I/O floor: select-only, ${results.clients} clients, ${results.durationSeconds} s per run`,
    '',
    `\`${results.command}\``,
    '',
    `Relays pass bytes untouched with one server connection per client: what Node's sockets cost without a pooler. Ratios are medians against ${reference ?? '–'}.`,
    '',
    '| protocol | target | µs CPU/tx per round | median µs CPU/tx | CPU/tx ratio | TPS per round | median TPS | TPS ratio |',
    '| --- | --- | --- | ---: | ---: | --- | ---: | ---: |',
  ];
  for (const protocol of protocols) {
    const medians = new Map<string, { cpu: number | null; tps: number | null }>();
    for (const label of results.labels) {
      const ok = results.runs.filter((r) => r.protocol === protocol && r.label === label && r.status === 'ok');
      medians.set(label, {
        cpu: median(ok.flatMap((r) => (r.cpuUsPerTx === null ? [] : [r.cpuUsPerTx]))),
        tps: median(ok.flatMap((r) => (r.tps === null ? [] : [r.tps]))),
      });
    }
    const ref = reference === undefined ? undefined : medians.get(reference);
    for (const label of results.labels) {
      const runs = results.runs.filter((r) => r.protocol === protocol && r.label === label);
      const m = medians.get(label) ?? { cpu: null, tps: null };
      const ratio = (a: number | null, b: number | null | undefined): string => (a === null || b === null || b === undefined || b === 0 ? '–' : (a / b).toFixed(2));
      lines.push(
        `| ${protocol} | ${label} | ${runs.map((r) => (r.status === 'ok' ? figure(r.cpuUsPerTx, 1) : r.status)).join(' / ')} | ${figure(m.cpu, 1)} | ${ratio(m.cpu, ref?.cpu)} | ${runs.map((r) => (r.status === 'ok' ? figure(r.tps, 0) : r.status)).join(' / ')} | ${figure(m.tps, 0)} | ${ratio(m.tps, ref?.tps)} |`,
      );
    }
  }
  const failed = results.runs.filter((r) => r.status !== 'ok');
  if (failed.length > 0) {
    lines.push('', ...failed.map((r) => `- round ${r.round}, ${r.protocol}, ${r.label}: ${r.status}${r.reason ? `: ${r.reason}` : ''}`));
  }
  return lines.join('\n') + '\n';
}
