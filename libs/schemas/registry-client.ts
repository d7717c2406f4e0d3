/**
 * The schema registry over its Confluent-compatible API (Apicurio serves it at /apis/ccompat/v7).
 * Registration and lookup go through @kafkajs/confluent-schema-registry. Schemas by id, subject
 * versions and compatibility checks use plain HTTP: the library parses schemas by id itself (we
 * need the text, to tell a schema we cannot use from a registry we cannot reach) and has no call
 * for the other two. Both paths share one agent (the registry's CA) and one set of credentials.
 */
import { request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';

/** What the serde needs from a registry; tests pass an in-memory one. */
export interface SchemaSource {
  /**
   * The schema the registry issued `id` for, or null if it never issued that id. Rejects when
   * the registry cannot answer (down, 5xx): that is transient, and no verdict on the record.
   */
  schemaById(id: number): Promise<RegisteredSchema | null>;
  /** The id under which `subject` holds exactly `schema`, or null if it does not hold it. */
  idOf(subject: string, schema: string): Promise<number | null>;
}

export interface RegisteredSchema {
  schema: string;
  /** AVRO unless the registry says otherwise. */
  schemaType: string;
}

export interface RegistryClient extends SchemaSource {
  readonly url: string;
  /** Registers `schema` under `subject` (BACKWARD compatibility for a new subject); same schema, same id. */
  register(subject: string, schema: string): Promise<number>;
  /** The subject's latest version, or null if there is no such subject. */
  latest(subject: string): Promise<{ id: number; version: number; schema: string } | null>;
  /** Whether `schema` may be registered as the subject's next version, with the registry's reasons if not. */
  compatibility(subject: string, schema: string): Promise<{ compatible: boolean; messages: string[] }>;
  /** Removes a subject and all its versions for good (throwaway test subjects). */
  deleteSubject(subject: string): Promise<void>;
}

export class RegistryError extends Error {
  readonly status: number | null;
  constructor(message: string, status: number | null) {
    super(message);
    this.name = 'RegistryError';
    this.status = status;
  }
}

const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';
/** A registry that accepts the connection and then never answers must not hang a start-up or a CLI. */
const REQUEST_TIMEOUT_MS = 30_000;

/** Credentials and trust for a registry behind basic auth or a private CA. */
export interface RegistryAccess {
  username?: string;
  password?: string;
  /** PEM CA certificate(s) to trust for an https registry, instead of the system's. */
  ca?: string;
}

function send(
  url: URL,
  options: { method: string; headers: Record<string, string>; body?: string; agent?: HttpsAgent },
): Promise<{ status: number; text: string }> {
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: options.method, headers: options.headers, agent: options.agent },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.setTimeout(REQUEST_TIMEOUT_MS, () =>
      req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)),
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export function createRegistryClient(url: string, access: RegistryAccess = {}): RegistryClient {
  const base = url.replace(/\/+$/, '');
  const agent = access.ca ? new HttpsAgent({ ca: access.ca, keepAlive: true }) : undefined;
  const auth =
    access.username !== undefined && access.password !== undefined
      ? { username: access.username, password: access.password }
      : undefined;
  const authorization: Record<string, string> = auth
    ? { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` }
    : {};
  const library = new SchemaRegistry({
    host: base,
    clientId: 'tidings',
    ...(auth ? { auth } : {}),
    ...(agent ? { agent } : {}),
  });

  async function call(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; data: unknown }> {
    let response: { status: number; text: string };
    try {
      response = await send(new URL(`${base}${path}`), {
        method,
        headers: {
          accept: CONTENT_TYPE,
          ...authorization,
          ...(body === undefined ? {} : { 'content-type': CONTENT_TYPE }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        ...(agent ? { agent } : {}),
      });
    } catch (error) {
      throw new RegistryError(`schema registry at ${base} is unreachable: ${(error as Error).message}`, null);
    }
    const { status, text } = response;
    let data: unknown = text;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {}
    return { status, data };
  }

  function failure(what: string, status: number, data: unknown): RegistryError {
    const message = (data as { message?: string } | null)?.message ?? JSON.stringify(data);
    return new RegistryError(
      `schema registry at ${base}: ${what} failed with HTTP ${status}: ${message}`,
      status,
    );
  }

  /** The library reports an unreachable registry as HTTP 400 with the socket error as message. */
  function libraryFailure(what: string, error: unknown): unknown {
    const status = (error as { status?: unknown }).status;
    if (typeof status !== 'number') return error;
    const message = (error as Error).message.replace(/^tidings - /, '');
    return new RegistryError(`schema registry at ${base}: ${what} failed: ${message}`, status);
  }

  return {
    url: base,

    async schemaById(id) {
      const { status, data } = await call('GET', `/schemas/ids/${id}`);
      if (status === 404) return null;
      if (status !== 200) throw failure(`reading schema id ${id}`, status, data);
      const body = data as { schema: string; schemaType?: string };
      return { schema: body.schema, schemaType: body.schemaType ?? 'AVRO' };
    },

    async idOf(subject, schema) {
      try {
        return await library.getRegistryIdBySchema(subject, { type: SchemaType.AVRO, schema });
      } catch (error) {
        // The library turns exactly the 404s (no such subject, or schema not under it) into this error.
        if ((error as Error).name === 'ConfluentSchemaRegistryError') return null;
        throw libraryFailure(`looking up our schema under ${subject}`, error);
      }
    },

    async register(subject, schema) {
      try {
        const { id } = await library.register({ type: SchemaType.AVRO, schema }, { subject });
        return id;
      } catch (error) {
        throw libraryFailure(`registering ${subject}`, error);
      }
    },

    async latest(subject) {
      const { status, data } = await call('GET', `/subjects/${encodeURIComponent(subject)}/versions/latest`);
      if (status === 404) return null;
      if (status !== 200) throw failure(`reading the latest version of ${subject}`, status, data);
      return data as { id: number; version: number; schema: string };
    },

    async compatibility(subject, schema) {
      const path = `/compatibility/subjects/${encodeURIComponent(subject)}/versions/latest?verbose=true`;
      const { status, data } = await call('POST', path, { schema });
      if (status !== 200) throw failure(`checking compatibility for ${subject}`, status, data);
      const body = data as { is_compatible: boolean; messages?: string[] };
      return { compatible: body.is_compatible, messages: body.messages ?? [] };
    },

    async deleteSubject(subject) {
      const path = `/subjects/${encodeURIComponent(subject)}`;
      for (const query of ['', '?permanent=true']) {
        const { status, data } = await call('DELETE', `${path}${query}`);
        if (status !== 200 && status !== 404) throw failure(`deleting ${subject}`, status, data);
      }
    },
  };
}
