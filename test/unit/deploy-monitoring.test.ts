/**
 * The alert rules and the dashboard ask only for metrics the services export, and every alert
 * links a runbook section that exists; a misspelt metric or a missing section is named.
 * (promtool tests the rules' behaviour: deploy/monitoring/alerts.test.yaml, run by make deploy-check.)
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  alertQueries,
  dashboardQueries,
  exportedMetricNames,
  headingAnchor,
  metricNamesIn,
  runbookProblems,
  unknownMetrics,
} from '../../deploy/monitoring/check.ts';

const root = join(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const rules = read('deploy/monitoring/alerts.yaml');
const dashboard = read('deploy/monitoring/dashboard.json');

describe('monitoring check', () => {
  test('every alert and dashboard query names a metric the services export', async () => {
    const queries = [...alertQueries(rules), ...dashboardQueries(dashboard)];
    assert.ok(queries.length >= 20);
    assert.deepEqual(unknownMetrics(queries, await exportedMetricNames()), []);
  });

  test('a misspelt metric is named, with where it is used', async () => {
    const exported = await exportedMetricNames();
    const queries = [
      { where: 'alert X', expr: 'sum by (group) (rate(tidings_consumer_dead_letter_total[5m])) > 1' },
    ];
    assert.deepEqual(unknownMetrics(queries, exported), [
      'alert X: tidings_consumer_dead_letter_total is not a metric the services export',
    ]);
  });

  test('metric names, not functions, labels, keywords, strings or numbers', () => {
    assert.deepEqual(
      metricNamesIn(
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y_z"}[5m]))) > 1e3 and on (dc) label_replace(b, "g", "$1", "c", "(.+)")',
      ),
      ['a_bucket', 'b'],
    );
  });

  test('every alert links a section of docs/operations.md; a missing one is named', () => {
    assert.deepEqual(runbookProblems(rules, read('docs/operations.md')), []);
    const broken = rules.replace('docs/operations.md#dlq-breaker-open', 'docs/operations.md#dlq-breaker');
    assert.deepEqual(runbookProblems(broken, read('docs/operations.md')), [
      'alert TidingsDlqBreakerOpen: docs/operations.md has no section #dlq-breaker',
    ]);
    assert.equal(headingAnchor('SMTP misconfigured (auth, TLS)'), 'smtp-misconfigured-auth-tls');
  });
});
