/**
 * Part of `make deploy-check` (promtool checks the rules themselves): every metric an alert rule
 * or a dashboard panel asks for is one the services export, and every alert links a runbook that
 * exists in docs/operations.md. A renamed metric otherwise leaves an alert that can never fire and
 * a panel that shows "no data", and nobody notices until the night it mattered.
 *
 * Exported names are read from the code's registrations (`name: 'tidings_...'` in libs/ and
 * services/) plus prom-client's default process metrics, which every service's registry carries.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { createRegistry } from '../../libs/metrics/registry.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const HERE = import.meta.dirname;

/** A metric registration in our code: `name: 'tidings_x'` inside a counter/gauge/histogram config. */
const REGISTRATION = /\bname:\s*'((?:tidings|kafka)_[a-z0-9_]+)'/g;
/** Series a histogram or summary exposes besides its name. */
const SUFFIXES = ['_bucket', '_sum', '_count'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => join(e.parentPath, e.name));
}

export async function exportedMetricNames(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const file of [...sourceFiles(join(ROOT, 'libs')), ...sourceFiles(join(ROOT, 'services'))]) {
    for (const match of readFileSync(file, 'utf8').matchAll(REGISTRATION)) names.add(match[1] ?? '');
  }
  for (const metric of await createRegistry().getMetricsAsJSON()) names.add(metric.name);
  for (const name of [...names]) for (const suffix of SUFFIXES) names.add(`${name}${suffix}`);
  return names;
}

const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'inf',
  'nan',
]);

/** The metric names a PromQL expression selects (not functions, labels, keywords or strings). */
export function metricNamesIn(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  const names = new Set<string>();
  // A word followed by "(" is a function; digits before a word make it part of a number (1e3).
  for (const match of bare.matchAll(/(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const word = match[1] ?? '';
    if (match[2] || KEYWORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names];
}

export interface Query {
  where: string;
  expr: string;
}

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  annotations?: Record<string, string>;
}

const rulesOf = (rulesYaml: string) =>
  (parse(rulesYaml) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);

export function alertQueries(rulesYaml: string): Query[] {
  return rulesOf(rulesYaml).map((r) => ({ where: `alert ${r.alert ?? r.record}`, expr: String(r.expr) }));
}

/** GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to dashes. */
export function headingAnchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** Every alert's runbook_url is `docs/operations.md#<anchor>` and that heading exists. */
export function runbookProblems(rulesYaml: string, operationsMd: string): string[] {
  const anchors = new Set(
    operationsMd
      .split('\n')
      .filter((line) => /^#{1,6} /.test(line))
      .map((line) => headingAnchor(line.replace(/^#+ /, ''))),
  );
  return rulesOf(rulesYaml)
    .filter((r) => r.alert)
    .flatMap((r) => {
      const url = r.annotations?.runbook_url ?? '';
      const anchor = /^docs\/operations\.md#(.+)$/.exec(url)?.[1];
      if (!anchor) return [`alert ${r.alert}: runbook_url "${url}" is not docs/operations.md#<section>`];
      return anchors.has(anchor) ? [] : [`alert ${r.alert}: docs/operations.md has no section #${anchor}`];
    });
}

interface Panel {
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

export function dashboardQueries(dashboardJson: string): Query[] {
  const dashboard = JSON.parse(dashboardJson) as {
    panels: Panel[];
    templating?: { list: { name: string; query?: unknown }[] };
  };
  const panels = (ps: readonly Panel[]): Panel[] => ps.flatMap((p) => [p, ...panels(p.panels ?? [])]);
  const queries = panels(dashboard.panels).flatMap((p) =>
    (p.targets ?? []).filter((t) => t.expr).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr ?? '' })),
  );
  for (const v of dashboard.templating?.list ?? []) {
    const inner = typeof v.query === 'string' ? /^label_values\((\w+)/.exec(v.query)?.[1] : undefined;
    if (inner) queries.push({ where: `variable ${v.name}`, expr: inner });
  }
  return queries;
}

export function unknownMetrics(queries: readonly Query[], exported: ReadonlySet<string>): string[] {
  return queries.flatMap((q) =>
    metricNamesIn(q.expr)
      .filter((name) => !exported.has(name))
      .map((name) => `${q.where}: ${name} is not a metric the services export`),
  );
}

if (import.meta.main) {
  const exported = await exportedMetricNames();
  const queries = [
    ...alertQueries(readFileSync(join(HERE, 'alerts.yaml'), 'utf8')),
    ...dashboardQueries(readFileSync(join(HERE, 'dashboard.json'), 'utf8')),
  ];
  const rules = readFileSync(join(HERE, 'alerts.yaml'), 'utf8');
  const problems = [
    ...unknownMetrics(queries, exported),
    ...runbookProblems(rules, readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8')),
  ];
  for (const p of problems) console.error(`  ${p}`);
  console.log(`${queries.length} alert and dashboard queries, ${problems.length} naming unknown metrics`);
  process.exit(problems.length > 0 ? 1 : 0);
}
