// The run's one table (stdout) and its JSON record (bench/results/*.json). Every figure
// printed next to a target is a ratio against a baseline measured in the same run (or,
// for memory and orphan publication, against the fixed budget the issue sets), so a
// slower or busier machine moves both sides of the ratio; the absolute numbers stand in
// the rows of their own scenarios.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import Table from 'cli-table3';
import type { Comparison } from '../scenarios/index.js';
import type { Figure } from '../scenarios/types.js';
import type { RunOptions, Sizes } from './context.js';
import { machineLine, type Machine } from './machine.js';
import { formatMs, formatNumber } from './stats.js';

export interface ScenarioRecord {
  name: string;
  summary: string;
  status: 'ok' | 'error';
  seconds: number;
  error?: string;
  figures: Record<string, Figure>;
  details: Record<string, unknown>;
}

export interface ComparisonRecord {
  figure: string;
  baseline: string;
  label: string;
  unit: Figure['unit'];
  value: number;
  baselineUnit: Figure['unit'];
  baselineValue: number;
  ratio: number;
  /** e.g. ">= 0.5"; absent for a comparison printed for information. */
  target?: string;
  /** null: for information, or a side of it was not measured (its scenario failed or did not run). */
  pass: boolean | null;
  /** The scenario whose rows show it, when not the figure's own (Comparison.under). */
  under?: string;
}

export interface Report {
  mode: 'full' | 'smoke' | 'partial';
  startedAt: string;
  finishedAt: string;
  seconds: number;
  options: RunOptions;
  sizes: Sizes;
  machine: Machine;
  /** Environment the service and the floor ran with beyond the defaults, and the knobs that matter here. */
  service: { env: Record<string, string>; config: Record<string, unknown> };
  scenarios: ScenarioRecord[];
  comparisons: ComparisonRecord[];
  /** True when the run itself failed (a scenario errored); a missed target is not a failure. */
  failed: boolean;
}

export function evaluateComparisons(comparisons: Comparison[], scenarios: ScenarioRecord[]): ComparisonRecord[] {
  const figureOf = ([scenario, key]: [string, string]) => scenarios.find((s) => s.name === scenario && s.status === 'ok')?.figures[key];
  const records: ComparisonRecord[] = [];
  for (const c of comparisons) {
    const value = figureOf(c.figure);
    const baseline = figureOf(c.baseline);
    // Left out when a side was not run at all (e.g. --scenario contended without uncontended);
    // kept, unjudged, when a side ran and failed.
    if (!scenarios.some((s) => s.name === c.figure[0]) || !scenarios.some((s) => s.name === c.baseline[0])) continue;
    const ratio = value && baseline ? value.value / baseline.value : Number.NaN;
    // An infinite ratio (an orphan never published) is judged; NaN (a side missing) is not.
    let pass: boolean | null = null;
    if (c.target && !Number.isNaN(ratio)) pass = c.target.op === '>=' ? ratio >= c.target.bound : ratio <= c.target.bound;
    records.push({
      figure: c.figure.join('.'),
      baseline: c.baseline.join('.'),
      label: value?.label ?? c.figure[1],
      unit: value?.unit ?? 'count',
      value: value?.value ?? Number.NaN,
      baselineUnit: baseline?.unit ?? 'count',
      baselineValue: baseline?.value ?? Number.NaN,
      ratio,
      ...(c.target ? { target: `${c.target.op} ${c.target.bound}` } : {}),
      pass,
      ...(c.under && c.under !== c.figure[0] ? { under: c.under } : {}),
    });
  }
  return records;
}

export function formatFigure(value: number, unit: Figure['unit'], text?: string): string {
  if (unit === 'text') return text ?? '';
  if (Number.isNaN(value)) return 'n/a';
  switch (unit) {
    case 'ms':
      return formatMs(value);
    case '%':
      return `${value.toFixed(1)} %`;
    case 'B':
      return `${formatNumber(value)} B`;
    case 'count':
      return formatNumber(value);
    default:
      return `${formatNumber(value)} ${unit}`;
  }
}

const COLUMNS = ['scenario', 'figure', 'value', 'baseline (same run)', 'ratio', 'target', 'result'];

export function renderTable(report: Report, jsonPath: string): string {
  const table = new Table({
    head: COLUMNS,
    colWidths: [16, 46, 16, 28, 7, 8, 8],
    wordWrap: true,
    style: { head: [], border: [], compact: true },
  });
  const span = (content: string) => [{ colSpan: COLUMNS.length, content }];
  table.push(
    span(
      `lease service benchmark (${report.mode}), ${report.startedAt}, ${Math.round(report.seconds)} s\n` +
        `${machineLine(report.machine)}\n` +
        `${report.options.connections} connections/callers in every phase (50 in contended); ${report.options.durationS} s measured per phase after ` +
        `${report.options.warmupS} s of warm-up`,
    ),
  );
  for (const scenario of report.scenarios) {
    if (scenario.status === 'error') {
      table.push([scenario.name, { colSpan: COLUMNS.length - 1, content: `ERROR: ${scenario.error ?? ''}`.slice(0, 600) }]);
      // What it measured before it failed (a ScenarioFailure) is still shown, unjudged.
      if (Object.keys(scenario.figures).length === 0) continue;
    }
    for (const [key, fig] of Object.entries(scenario.figures)) {
      if (fig.unit === 'text') {
        table.push([scenario.name, fig.label, { colSpan: COLUMNS.length - 2, content: fig.text ?? '' }]);
        continue;
      }
      const comparison = report.comparisons.find((c) => c.figure === `${scenario.name}.${key}` && c.under === undefined);
      if (!comparison) {
        table.push([scenario.name, fig.label, formatFigure(fig.value, fig.unit, fig.text), '', '', '', '']);
        continue;
      }
      table.push([scenario.name, fig.label, formatFigure(fig.value, fig.unit, fig.text), ...comparisonCells(comparison, scenario.name)]);
    }
    // Comparisons of another scenario's figure shown here (e.g. cycle's pairs against etcd's).
    for (const comparison of report.comparisons.filter((c) => c.under === scenario.name)) {
      const [figureScenario] = comparison.figure.split('.');
      table.push([
        scenario.name,
        `${figureScenario} ${comparison.label}`,
        formatFigure(comparison.value, comparison.unit),
        ...comparisonCells(comparison, scenario.name),
      ]);
    }
  }
  const judged = report.comparisons.filter((c) => c.pass !== null);
  const failedScenarios = report.scenarios.filter((s) => s.status === 'error').length;
  table.push(
    span(
      `targets: ${judged.filter((c) => c.pass).length} pass, ${judged.filter((c) => !c.pass).length} fail` +
        (failedScenarios ? `; ${failedScenarios} scenario(s) FAILED TO RUN` : '') +
        `${report.mode === 'smoke' ? ' (smoke: tiny sizes, targets not enforced)' : ''}; record: ${jsonPath}`,
    ),
  );
  return table.toString();
}

/** The baseline, ratio, target and result cells of a comparison's row in `scenario`'s rows. */
function comparisonCells(comparison: ComparisonRecord, scenario: string): string[] {
  const [baselineScenario] = comparison.baseline.split('.');
  const baselineValue = formatFigure(comparison.baselineValue, comparison.baselineUnit);
  return [
    baselineScenario === scenario ? baselineValue : `${baselineScenario} ${baselineValue}`,
    Number.isFinite(comparison.ratio) ? comparison.ratio.toFixed(2) : String(comparison.ratio),
    comparison.target?.replace('>=', '≥').replace('<=', '≤') ?? '',
    comparison.pass === null ? (comparison.target ? 'n/a' : '') : comparison.pass ? 'PASS' : 'FAIL',
  ];
}

export function writeReport(path: string, report: Report): void {
  mkdirSync(dirname(path), { recursive: true });
  // Infinity (an orphan never published) is not JSON; write it as a string.
  const json = JSON.stringify(report, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? String(value) : value), 2);
  writeFileSync(path, `${json}\n`);
}
