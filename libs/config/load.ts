/**
 * Loads a declarative spec of environment variables once, at start-up. Every problem is
 * collected into one ConfigError, so an operator fixes a broken deployment in one round instead
 * of one variable per crash loop.
 *
 * Every secret variable NAME may instead be given as NAME_FILE, the path of a file holding the
 * value (a mounted Kubernetes secret), so secrets stay out of the environment and manifests.
 */
import { readFileSync } from 'node:fs';
import type { Var } from './vars.ts';

export type Env = Readonly<Record<string, string | undefined>>;

export type Spec = Readonly<Record<string, Var<unknown>>>;

/** The loaded config of a spec: one readonly field per variable, typed by its kind and presence. */
export type ConfigOf<S extends Spec> = { readonly [K in keyof S]: S[K] extends Var<infer T> ? T : never };

/**
 * A check across variables, e.g. "TIDINGS_DCS must include TIDINGS_DC". It runs only when every
 * variable in `vars` loaded; a problem it returns is reported against the first of them.
 */
export interface ConfigRule<C> {
  readonly vars: readonly (keyof C & string)[];
  /** The problem, phrased to follow "<first var>: ", or undefined when the config is fine. */
  check(config: C): string | undefined;
}

export interface ConfigProblem {
  readonly variable: string;
  readonly message: string;
}

export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
    super(`invalid configuration (${count}):\n${problems.map((p) => `  ${p.message}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** A variable's raw value; empty or blank counts as unset, as `FOO=` in a unit file or manifest means. */
export function readEnv(env: Env, name: string): string | undefined {
  const raw = env[name]?.trim();
  return raw ? raw : undefined;
}

function withHelp(v: Var<unknown>, text: string): string {
  return v.help ? `${text} (${v.help})` : text;
}

/** The suffix of the variable that names a file holding a secret variable's value. */
export const FILE_SUFFIX = '_FILE';

type Source = { raw: string | undefined; from: string } | { problem: string; variable: string };

/**
 * A variable's raw value and the variable it came from: NAME itself, or for a secret the file
 * NAME_FILE names (one trailing newline or blank is not part of a secret written with `echo`).
 */
function readSource(env: Env, name: string, v: Var<unknown>): Source {
  const raw = readEnv(env, name);
  const fileVar = `${name}${FILE_SUFFIX}`;
  const path = v.secret ? readEnv(env, fileVar) : undefined;
  if (path === undefined) return { raw, from: name };
  if (raw !== undefined) {
    return { variable: name, problem: `set either ${name} or ${fileVar}, not both` };
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    return {
      variable: fileVar,
      problem: `cannot read ${JSON.stringify(path)} (${code}); mount the secret there or unset ${fileVar}`,
    };
  }
  const value = text.trim();
  if (value === '') {
    return {
      variable: fileVar,
      problem: `${JSON.stringify(path)} is empty; write the value of ${name} into it`,
    };
  }
  return { raw: value, from: fileVar };
}

export function loadConfig<S extends Spec>(
  spec: S,
  env: Env,
  options: { rules?: readonly ConfigRule<ConfigOf<S>>[] } = {},
): ConfigOf<S> {
  const config: Record<string, unknown> = {};
  const loaded = new Set<string>();
  const problems: ConfigProblem[] = [];
  const report = (variable: string, message: string) => {
    problems.push({ variable, message: `${variable}: ${message}` });
  };

  for (const [name, v] of Object.entries(spec)) {
    const source = readSource(env, name, v);
    if ('problem' in source) {
      report(source.variable, source.problem);
      continue;
    }
    const { raw, from } = source;
    if (raw === undefined) {
      if (v.defaultValue === undefined && !v.optional) {
        const how = v.secret ? `set it (or ${name}${FILE_SUFFIX}) to` : 'set';
        report(name, withHelp(v, `not set; ${how} ${v.expect}`));
        continue;
      }
      config[name] = v.defaultValue;
    } else {
      const parsed = v.parse(raw);
      if (!parsed.ok) {
        report(from, withHelp(v, `${v.quote(raw)} ${parsed.reason}; set ${v.expect}`));
        continue;
      }
      config[name] = parsed.value;
    }
    loaded.add(name);
  }

  const typed = config as ConfigOf<S>;
  for (const rule of options.rules ?? []) {
    const [first] = rule.vars;
    if (first === undefined || !rule.vars.every((name) => loaded.has(name))) continue;
    const problem = rule.check(typed);
    if (problem !== undefined) report(first, problem);
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return typed;
}

/** Every variable name a spec reads: its own, and NAME_FILE for each secret (for manifest checks). */
export function acceptedVariables(spec: Spec): string[] {
  return Object.entries(spec).flatMap(([name, v]) => (v.secret ? [name, `${name}${FILE_SUFFIX}`] : [name]));
}

/** The effective config with secrets masked, for /_info and the start-up log line. */
export function describeConfig<S extends Spec>(
  spec: S,
  config: ConfigOf<S>,
): Record<keyof S & string, unknown> {
  const described: Record<string, unknown> = {};
  const values = config as Record<string, unknown>;
  for (const [name, v] of Object.entries(spec)) described[name] = v.show(values[name]);
  return described as Record<keyof S & string, unknown>;
}
