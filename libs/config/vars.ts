/**
 * The kinds of environment variable a service can declare. A builder returns a Var whose type
 * parameter is what the loaded config holds for it, so `loadConfig` infers the config type from the
 * spec: `T` for a required variable or one with a default, `T | undefined` for an optional one.
 */
import { readFileSync } from 'node:fs';
import { parseDuration } from './duration.ts';

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

export interface Var<T> {
  readonly kind: string;
  /** What a valid value looks like; completes "set ..." in error messages. */
  readonly expect: string;
  readonly help: string | undefined;
  readonly secret: boolean;
  readonly optional: boolean;
  readonly defaultValue: T | undefined;
  /** Parses a trimmed, non-empty raw value. */
  parse(raw: string): Parsed<T>;
  /** A raw value, possibly invalid, as an error message may quote it (masked when secret). */
  quote(raw: string): string;
  /** A loaded value as operators may see it (masked when secret); JSON-safe. */
  show(value: T): unknown;
}

export interface VarOptions<T> {
  /** What the variable is for; appended to every problem reported about it. */
  help?: string;
  /** Masks the value in errors, describeConfig, /_info and the start-up log. */
  secret?: boolean;
  /** Unset is fine and loads as undefined. Without this or a default, the variable is required. */
  optional?: boolean;
  default?: T;
}

type Output<T, O> = O extends { default: unknown } ? T : O extends { optional: true } ? T | undefined : T;

interface Kind<T> {
  kind: string;
  expect: string;
  parse(raw: string): Parsed<T>;
  /** How a secret of this kind is shown; by default nothing of it is. */
  mask?(raw: string): string;
  /** How a loaded value is shown when it is not secret; by default as it is. */
  display?(value: T): unknown;
}

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });
const hideAll = () => '***';

function define<T, O extends VarOptions<unknown>>(kind: Kind<T>, options: O | undefined): Var<Output<T, O>> {
  const secret = options?.secret ?? false;
  const mask = kind.mask ?? hideAll;
  const v: Var<T> = {
    kind: kind.kind,
    expect: kind.expect,
    help: options?.help,
    secret,
    optional: options?.optional ?? false,
    // Builders type `default` as T (str with choices narrows T further than its options can say).
    defaultValue: options?.default as T | undefined,
    parse: kind.parse,
    quote: (raw) => JSON.stringify(secret ? mask(raw) : raw),
    show: (value) => {
      if (value === undefined) return null;
      if (!secret) return kind.display ? kind.display(value) : value;
      return typeof value === 'string' ? mask(value) : hideAll();
    },
  };
  // Output<T, O> is T or T | undefined; the runtime object is the same either way.
  return v as Var<Output<T, O>>;
}

/** "an integer 1-100", "a duration >= 1ms". */
function rangeText(what: string, min: number | undefined, max: number | undefined, unit = ''): string {
  if (min !== undefined && max !== undefined) return `${what} ${min}${unit}-${max}${unit}`;
  if (min !== undefined) return `${what} >= ${min}${unit}`;
  if (max !== undefined) return `${what} <= ${max}${unit}`;
  return what;
}

function outOfRange(
  n: number,
  min: number | undefined,
  max: number | undefined,
  unit = '',
): string | undefined {
  if (min !== undefined && n < min) return `is below the minimum ${min}${unit}`;
  if (max !== undefined && n > max) return `is above the maximum ${max}${unit}`;
  return undefined;
}

function parseInteger(raw: string): number | undefined {
  if (!/^-?\d+$/.test(raw)) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : undefined;
}

function splitList(raw: string): string[] {
  return raw
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

export interface StrOptions extends VarOptions<string> {
  pattern?: RegExp;
  /** What a matching value looks like in words, for error messages; defaults to the pattern. */
  expect?: string;
  /** The only accepted values; the config type becomes their union. */
  choices?: readonly string[];
}

type StrValue<O> = O extends { choices: readonly (infer C extends string)[] } ? C : string;

export function str<const O extends StrOptions>(options?: O): Var<Output<StrValue<O>, O>> {
  const { pattern, choices } = options ?? {};
  const expect = choices
    ? `one of ${choices.join(', ')}`
    : (options?.expect ?? (pattern ? `a value matching ${pattern}` : 'a non-empty string'));
  return define<StrValue<O>, O>(
    {
      kind: 'str',
      expect,
      parse: (raw) => {
        if (choices && !choices.includes(raw)) return fail('is not an accepted value');
        if (pattern && !pattern.test(raw)) return fail(`does not match ${pattern}`);
        return ok(raw as StrValue<O>);
      },
    },
    options,
  );
}

export interface IntOptions extends VarOptions<number> {
  min?: number;
  max?: number;
}

export function int<const O extends IntOptions>(options?: O): Var<Output<number, O>> {
  const { min, max } = options ?? {};
  return define<number, O>(
    {
      kind: 'int',
      expect: rangeText('an integer', min, max),
      parse: (raw) => {
        const n = parseInteger(raw);
        if (n === undefined) return fail('is not an integer');
        const range = outOfRange(n, min, max);
        return range ? fail(range) : ok(n);
      },
    },
    options,
  );
}

export function port<const O extends VarOptions<number>>(options?: O): Var<Output<number, O>> {
  return define<number, O>(
    {
      kind: 'port',
      expect: 'an integer 1-65535',
      parse: (raw) => {
        const n = parseInteger(raw);
        return n !== undefined && n >= 1 && n <= 65535 ? ok(n) : fail('is not a port');
      },
    },
    options,
  );
}

const BOOLEANS: Readonly<Record<string, boolean>> = {
  true: true,
  false: false,
  '1': true,
  '0': false,
  yes: true,
  no: false,
};

export function bool<const O extends VarOptions<boolean>>(options?: O): Var<Output<boolean, O>> {
  return define<boolean, O>(
    {
      kind: 'bool',
      expect: 'true or false (or 1/0, yes/no)',
      parse: (raw) => {
        const b = BOOLEANS[raw.toLowerCase()];
        return b === undefined ? fail('is not a boolean') : ok(b);
      },
    },
    options,
  );
}

export interface ListOptions extends VarOptions<readonly string[]> {
  /** Every item must match. */
  pattern?: RegExp;
  /** What a matching item looks like in words, for error messages; defaults to the pattern. */
  itemExpect?: string;
}

export function list<const O extends ListOptions>(options?: O): Var<Output<readonly string[], O>> {
  const pattern = options?.pattern;
  const items = options?.itemExpect ?? (pattern ? `values matching ${pattern}` : undefined);
  return define<readonly string[], O>(
    {
      kind: 'list',
      expect: `a comma-separated list${items ? ` of ${items}` : ''}`,
      parse: (raw) => {
        const items = splitList(raw);
        if (items.length === 0) return fail('has no items');
        const bad = pattern ? items.find((item) => !pattern.test(item)) : undefined;
        return bad === undefined
          ? ok(items)
          : fail(`has item ${JSON.stringify(bad)} not matching ${pattern}`);
      },
    },
    options,
  );
}

export interface UrlOptions extends VarOptions<string> {
  /** Accepted schemes without the colon, e.g. ['http', 'https']. */
  protocols?: readonly string[];
}

/**
 * A secret URL keeps its scheme, user, host and path visible (operators need to see which
 * database a service talks to) and hides the password, query and fragment. A token inside a
 * URL path is not hidden: declare such a variable as a secret str instead.
 */
function maskUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return '***';
  }
  if (url.password) url.password = '***';
  if (url.search) url.search = '***';
  url.hash = '';
  return url.href;
}

export function url<const O extends UrlOptions>(options?: O): Var<Output<string, O>> {
  const protocols = options?.protocols;
  const schemes = protocols?.join(' or ');
  return define<string, O>(
    {
      kind: 'url',
      expect: schemes ? `a ${schemes} URL` : 'a URL',
      parse: (raw) => {
        if (!URL.canParse(raw)) return fail('is not a URL');
        const scheme = new URL(raw).protocol.slice(0, -1);
        if (protocols && !protocols.includes(scheme)) return fail(`is not a ${schemes} URL`);
        return ok(raw);
      },
      mask: maskUrl,
    },
    options,
  );
}

export interface DurationOptions extends VarOptions<number> {
  /** Bounds in milliseconds. */
  min?: number;
  max?: number;
}

const DURATION_EXAMPLES = 'like 500ms, 5s, 2m, 1h (a plain number is ms)';

/** Loads as a number of milliseconds. */
export function duration<const O extends DurationOptions>(options?: O): Var<Output<number, O>> {
  const { min, max } = options ?? {};
  return define<number, O>(
    {
      kind: 'duration',
      expect: `${rangeText('a duration', min, max, 'ms')} ${DURATION_EXAMPLES}`,
      parse: (raw) => {
        const ms = parseDuration(raw);
        if (ms === undefined) return fail('is not a duration');
        const range = outOfRange(ms, min, max, 'ms');
        return range ? fail(range) : ok(ms);
      },
    },
    options,
  );
}

/** A comma-separated list of durations; loads as milliseconds. */
export interface DurationsOptions extends VarOptions<readonly number[]> {
  /** Bounds in milliseconds, for every item. */
  min?: number;
  max?: number;
}

export function durations<const O extends DurationsOptions>(options?: O): Var<Output<readonly number[], O>> {
  const { min, max } = options ?? {};
  return define<readonly number[], O>(
    {
      kind: 'durations',
      expect: `a comma-separated list of ${rangeText('durations', min, max, 'ms')} ${DURATION_EXAMPLES}`,
      parse: (raw) => {
        const items = splitList(raw);
        if (items.length === 0) return fail('has no items');
        const values: number[] = [];
        for (const item of items) {
          const ms = parseDuration(item);
          if (ms === undefined) return fail(`has item ${JSON.stringify(item)} that is not a duration`);
          const range = outOfRange(ms, min, max, 'ms');
          if (range) return fail(`has item ${JSON.stringify(item)} that ${range}`);
          values.push(ms);
        }
        return ok(values);
      },
    },
    options,
  );
}

/** A file read once at start-up: its path (what operators see) and its text. */
export interface LoadedFile {
  readonly path: string;
  readonly text: string;
}

export interface FileOptions extends VarOptions<LoadedFile> {
  /** The text must match, e.g. a PEM block; `expect` says so in words. */
  contains?: RegExp;
  /** What the file holds, for error messages: "a PEM certificate file". */
  expect?: string;
}

/**
 * The path of a file the process must be able to read at start-up (a CA, a client certificate and
 * its key): a missing or unreadable mount fails the start, not the first connection minutes later.
 * Only the path is ever shown, so a key file's content never reaches a log.
 */
export function file<const O extends FileOptions>(options?: O): Var<Output<LoadedFile, O>> {
  const contains = options?.contains;
  return define<LoadedFile, O>(
    {
      kind: 'file',
      expect: `the path of ${options?.expect ?? 'a readable file'}`,
      parse: (raw) => {
        let text: string;
        try {
          text = readFileSync(raw, 'utf8');
        } catch (error) {
          return fail(
            `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
          );
        }
        if (contains && !contains.test(text)) return fail(`does not hold ${options?.expect ?? contains}`);
        return ok({ path: raw, text });
      },
      display: (value) => value.path,
    },
    options,
  );
}
