/**
 * Registering the stream schemas and checking changes against the registry: the deploy-time half
 * of the schema story (the serde only ever looks schemas up). Subjects use BACKWARD
 * compatibility: consumers upgraded first can read what not-yet-upgraded producers write.
 */
import {
  type AvroSchema,
  avroType,
  loadCatalog,
  STREAMS,
  type StreamName,
  type StreamSchema,
  streamSchema,
  subjectFor,
} from './catalog.ts';
import { createRegistryClient, type RegistryClient } from './registry-client.ts';

export interface AdminOptions {
  /** Streams to act on; default all. */
  streams?: readonly StreamName[];
  /** Subject per stream; default `<stream>-value`. Tests use throwaway subjects. */
  subject?: (stream: StreamName) => string;
  /** Read schemas from this folder instead of schemas/, e.g. to check a candidate change. */
  schemasDir?: string;
}

export interface RegisterResult {
  stream: StreamName;
  subject: string;
  status: 'created' | 'unchanged' | 'rejected';
  id: number | null;
  messages: string[];
}

export interface CheckResult {
  stream: StreamName;
  subject: string;
  status: 'compatible' | 'incompatible' | 'new';
  messages: string[];
}

export interface SubjectState {
  stream: StreamName;
  subject: string;
  /** registered: our schema is in the subject; changed: the subject holds only other schemas; missing: no subject. */
  state: 'registered' | 'changed' | 'missing';
  /** Id of our schema, when registered. */
  id: number | null;
  latestVersion: number | null;
  latestId: number | null;
}

type Registry = string | RegistryClient;

/** Registers every stream schema; idempotent: a schema already registered keeps its id. */
export async function registerAll(registry: Registry, options: AdminOptions = {}): Promise<RegisterResult[]> {
  const client = clientFor(registry);
  const results: RegisterResult[] = [];
  for (const { stream, subject, text, json } of targets(options)) {
    const existing = await client.idOf(subject, text);
    if (existing !== null) {
      results.push({ stream, subject, status: 'unchanged', id: existing, messages: [] });
      continue;
    }
    try {
      const id = await client.register(subject, text);
      results.push({ stream, subject, status: 'created', id, messages: [] });
    } catch (error) {
      // 409: incompatible with the subject's rule; 422: a schema the registry will not accept.
      const status = (error as { status?: unknown }).status;
      if (status !== 409 && status !== 422) throw error;
      const messages = [(error as Error).message, ...(await localReasons(client, subject, json))];
      results.push({ stream, subject, status: 'rejected', id: null, messages });
    }
  }
  return results;
}

/** Checks every stream schema against the latest version of its subject, without registering. */
export async function checkAll(registry: Registry, options: AdminOptions = {}): Promise<CheckResult[]> {
  const client = clientFor(registry);
  const results: CheckResult[] = [];
  for (const { stream, subject, text, json } of targets(options)) {
    if ((await client.latest(subject)) === null) {
      results.push({ stream, subject, status: 'new', messages: [] });
      continue;
    }
    const verdict = await client.compatibility(subject, text);
    if (verdict.compatible) {
      results.push({ stream, subject, status: 'compatible', messages: verdict.messages });
    } else {
      const messages =
        verdict.messages.length > 0 ? verdict.messages : await localReasons(client, subject, json);
      results.push({ stream, subject, status: 'incompatible', messages });
    }
  }
  return results;
}

/** Where each stream's schema stands in the registry. */
export async function describeAll(registry: Registry, options: AdminOptions = {}): Promise<SubjectState[]> {
  const client = clientFor(registry);
  const states: SubjectState[] = [];
  for (const { stream, subject, text } of targets(options)) {
    const latest = await client.latest(subject);
    const id = latest ? await client.idOf(subject, text) : null;
    states.push({
      stream,
      subject,
      state: id !== null ? 'registered' : latest ? 'changed' : 'missing',
      id,
      latestVersion: latest?.version ?? null,
      latestId: latest?.id ?? null,
    });
  }
  return states;
}

function clientFor(registry: Registry): RegistryClient {
  return typeof registry === 'string' ? createRegistryClient(registry) : registry;
}

function targets(options: AdminOptions): (StreamSchema & { subject: string })[] {
  const catalog = options.schemasDir ? loadCatalog(options.schemasDir) : undefined;
  return (options.streams ?? STREAMS).map((stream) => {
    const schema = catalog ? catalog.get(stream)! : streamSchema(stream);
    return { ...schema, subject: options.subject ? options.subject(stream) : subjectFor(stream) };
  });
}

/**
 * Why `json` cannot read what the subject's latest schema wrote, in avsc's words. The registry's
 * own verdict stands; this only explains it when the registry gives no reasons.
 */
async function localReasons(client: RegistryClient, subject: string, json: AvroSchema): Promise<string[]> {
  const latest = await client.latest(subject);
  if (!latest) return [];
  try {
    avroType(json).createResolver(avroType(JSON.parse(latest.schema)));
    return [];
  } catch (error) {
    return [`cannot read version ${latest.version} (id ${latest.id}): ${(error as Error).message}`];
  }
}
