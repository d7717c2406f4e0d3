/**
 * Renders command results: an aligned table for people, JSON for scripts (values as they are),
 * CSV for spreadsheets. Lists become "a; b" in table and CSV cells.
 *
 * What is printed may hold bytes an outsider wrote (a dead letter's headers and values), and an
 * ESC or CSI byte reaching the operator's terminal can rewrite what it shows or worse. Table and
 * CSV cells have every control character (C0, DEL, C1, and the Unicode line and bidi controls)
 * replaced by U+FFFD; JSON keeps values exact by writing those characters as \u escapes.
 */

export const OUTPUT_FORMATS = ['table', 'json', 'csv'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** One result: an object whose fields are the columns. */
export type Row = object;

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** Text safe to show on a terminal: every control character replaced. */
export const printable = (text: string): string => text.replace(CONTROL, '\ufffd');

/** JSON.stringify escapes C0 controls itself (its own newlines are layout); the rest are escaped here. */
const NOT_ESCAPED_BY_JSON = /[\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const jsonSafe = (json: string): string =>
  json.replace(NOT_ESCAPED_BY_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

export function render(format: OutputFormat, rows: readonly Row[], columns?: readonly string[]): string {
  if (format === 'json') return `${jsonSafe(JSON.stringify(rows, null, 2))}\n`;
  const cols = columns ?? [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cells = rows.map((row) => cols.map((c) => printable(cellText((row as Record<string, unknown>)[c]))));
  if (format === 'csv') {
    return [cols.map(printable), ...cells]
      .map((line) => line.map(csvField).join(','))
      .join('\n')
      .concat('\n');
  }
  if (rows.length === 0) return '(none)\n';
  const headers = cols.map((c) => printable(c).toUpperCase().replaceAll('_', ' '));
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
