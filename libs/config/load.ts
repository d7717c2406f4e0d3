/**
 * Loads a declarative spec of environment variables once, at start-up. Every problem is
 * collected into one ConfigError, so an operator fixes a broken deployment in one round instead
 * of one variable per crash loop.
 */
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
    const raw = readEnv(env, name);
    if (raw === undefined) {
      if (v.defaultValue === undefined && !v.optional) {
        report(name, withHelp(v, `not set; set ${v.expect}`));
        continue;
      }
      config[name] = v.defaultValue;
    } else {
      const parsed = v.parse(raw);
      if (!parsed.ok) {
        report(name, withHelp(v, `${v.quote(raw)} ${parsed.reason}; set ${v.expect}`));
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
