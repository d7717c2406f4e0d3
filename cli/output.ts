/**
 * Renders command results: an aligned table for people, JSON for scripts (values as they are),
 * CSV for spreadsheets. Lists become "a; b" in table and CSV cells.
 */

export const OUTPUT_FORMATS = ['table', 'json', 'csv'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** One result: an object whose fields are the columns. */
export type Row = object;

export function render(format: OutputFormat, rows: readonly Row[], columns?: readonly string[]): string {
  if (format === 'json') return `${JSON.stringify(rows, null, 2)}\n`;
  const cols = columns ?? [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cells = rows.map((row) => cols.map((c) => cellText((row as Record<string, unknown>)[c])));
  if (format === 'csv') {
    return [cols, ...cells]
      .map((line) => line.map(csvField).join(','))
      .join('\n')
      .concat('\n');
  }
  if (rows.length === 0) return '(none)\n';
  const headers = cols.map((c) => c.toUpperCase().replaceAll('_', ' '));
  const widths = cols.map((_, i) => Math.max(headers[i]!.length, ...cells.map((line) => line[i]!.length)));
  const line = (values: readonly string[]) =>
    values
      .map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n').concat('\n');
}

function cellText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (Array.isArray(value)) return value.map(cellText).join('; ');
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** RFC 4180: quote fields holding a comma, quote or line break; double the quotes inside. */
function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}
