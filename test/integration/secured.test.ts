/**
 * Tidings against the local stack's secured listeners (deploy/local/ctl.sh): SASL_SSL with SCRAM,
 * and TLS with a client certificate (mTLS). Over each, configured only through the variables an
 * operator sets (the password from a mounted file, KAFKA_SASL_PASSWORD_FILE): the publish library
 * publishes, a service consumes and produces, `tidings lag` and `tidings replay` work. Wrong
 * credentials stop a service at start-up, and the CLI, with an error naming the variable to fix.
 *
 * The schema registry behind TLS and basic auth: Apicurio 3 does basic auth only through an OIDC
 * server, so a small HTTPS proxy in front of it (with the stack's CA) demands the credentials.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { localPort } from '../../libs/config/common.ts';
import { kafkaSecurityFromEnv } from '../../libs/config/connectivity.ts';
import { createKafka, probeKafka } from '../../libs/kafka/client.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import { createPublisher } from '../../libs/publish/publish.ts';
import {
  createRegistryClient,
  type RegistryAccess,
  RegistryError,
} from '../../libs/schemas/registry-client.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import {
  BROKERS,
  createStreamTopics,
  deleteDcTopics,
  eventually,
  REGISTRY_URL,
  readTopic,
  relayTopics,
  runTidingsWith,
  type ServiceProcess,
  spawnService,
  stopServices,
  uniqueDc,
  withAdmin,
} from './harness.ts';

const REPO = join(import.meta.dirname, '..', '..');
/** Where the stack scripts keep the secured listeners' CA, certificates and SASL password. */
const SECURITY_DIR = join(process.env.TIDINGS_DATA_DIR ?? join(REPO, '.data'), 'security');
const secret = (name: string) => join(SECURITY_DIR, name);

interface Listener {
  brokers: string;
  env: Record<string, string>;
}

const LISTENERS: Record<string, Listener> = {
  'SASL_SSL with SCRAM-SHA-512': {
    brokers: `127.0.0.1:${localPort(9094)}`,
    env: {
      KAFKA_TLS: 'true',
      KAFKA_TLS_CA_FILE: secret('ca.crt'),
      KAFKA_SASL_MECHANISM: 'scram-sha-512',
      KAFKA_SASL_USERNAME: 'tidings',
      KAFKA_SASL_PASSWORD_FILE: secret('kafka-password'),
    },
  },
  'mTLS (client certificate)': {
    brokers: `127.0.0.1:${localPort(9095)}`,
    env: {
      KAFKA_TLS: 'true',
      KAFKA_TLS_CA_FILE: secret('ca.crt'),
      KAFKA_TLS_CERT_FILE: secret('client.crt'),
      KAFKA_TLS_KEY_FILE: secret('client.key'),
    },
  },
};

const serde = createSerde({ registryUrl: REGISTRY_URL });
const scratch = mkdtempSync(join(tmpdir(), 'tidings-secured-'));
const cleanups: (() => Promise<void>)[] = [];

after(async () => {
  await stopServices('SIGKILL');
  for (const cleanup of cleanups) await cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

/** The relay fixture (a runService service: notify.event in, notify.preference-change out). */
function startRelay(
  dc: string,
  group: string,
  brokers: string,
  env: Record<string, string>,
): Promise<ServiceProcess> {
  return spawnService(
    join(import.meta.dirname, 'fixtures', 'relay-service.ts'),
    dc,
    { KAFKA_BROKERS: brokers, RELAY_NAME: group, CHECKPOINT_INTERVAL: '500ms', ...env },
    { capture: true },
  );
}

for (const [name, listener] of Object.entries(LISTENERS)) {
  describe(`over ${name}`, () => {
    const security = kafkaSecurityFromEnv(listener.env);
    const kafka = createKafka({ clientId: 'tidings-test-secured', brokers: [listener.brokers], security });
    const dc = uniqueDc();
    const group = `${dc}-relay`;
    const cliEnv = { ...process.env, ...listener.env };
    const tidings = (...args: string[]) => runTidingsWith(cliEnv, '--brokers', listener.brokers, ...args);
    const events = Array.from({ length: 20 }, (_, i) => `e${i}`);
    cleanups.push(() => deleteDcTopics(kafka, dc));

    test('the publish library publishes and a service consumes and produces', async () => {
      await createStreamTopics(
        kafka,
        dc,
        ['notify.event', 'notify.preference-change', 'notify.checkpoint'],
        2,
      );
      await relayTopics(kafka, dc, group);
      const publisher = createPublisher({
        brokers: [listener.brokers],
        dc,
        registryUrl: REGISTRY_URL,
        producer: 'secured-test',
        security,
      });
      try {
        await publisher.publishMany(
          events.map((id) => ({
            stream: 'notify.event' as const,
            record: { event_id: id, type: 'test', category: 'test', recipients: ['u1'] },
          })),
        );
      } finally {
        await publisher.close();
      }

      const relay = await startRelay(dc, group, listener.brokers, listener.env);
      const out = await readTopic(
        kafka,
        topicFor(dc, 'notify.preference-change'),
        (m) => m.length >= events.length,
        60_000,
      );
      const relayed = await Promise.all(
        out.map(async (m) => (await serde.decode('notify.preference-change', m.value!)).user_id),
      );
      assert.deepEqual(new Set(relayed), new Set(events));
      await eventually(
        async () =>
          (await committed(kafka, group, topicFor(dc, 'notify.event'))) === events.length ? true : undefined,
        'the relay to commit every event',
        60_000,
      );

      const lag = await tidings('lag', '--group', group, '--samples', '1', '-o', 'json');
      assert.equal(lag.status, 0, lag.stderr);
      const rows = JSON.parse(lag.stdout) as { group: string; lag: number }[];
      assert.ok(rows.length > 0 && rows.every((r) => r.group === group && r.lag === 0), lag.stdout);

      relay.child.kill('SIGTERM');
      assert.equal(await relay.exited, 0, relay.output());
    });

    test('tidings replay moves the stopped group back', async () => {
      const rollback = join(scratch, `${dc}-rollback.json`);
      const replay = await tidings(
        'replay',
        '--group',
        group,
        '--since',
        '1h',
        '--execute',
        '--rollback-file',
        rollback,
      );
      assert.equal(replay.status, 0, replay.stderr);
      assert.equal(await committed(kafka, group, topicFor(dc, 'notify.event')), 0);
    });
  });
}

async function committed(
  kafka: ReturnType<typeof createKafka>,
  group: string,
  topic: string,
): Promise<number> {
  return withAdmin(kafka, async (admin) => {
    const [t] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return (t?.partitions ?? []).reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
  });
}

/** An unsigned JWT, which Kafka's unsecured OAUTHBEARER validator (the local stack's) accepts. */
function unsecuredJwt(sub: string): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return `${part({ alg: 'none' })}.${part({ sub, iat: now, exp: now + 3600 })}.`;
}

test('every other SASL mechanism logs in through the same variables: PLAIN, SCRAM-SHA-256, OAUTHBEARER', async () => {
  const { brokers, env } = LISTENERS['SASL_SSL with SCRAM-SHA-512']!;
  const tokenFile = join(scratch, 'oauth-token');
  writeFileSync(tokenFile, unsecuredJwt('tidings'));
  const { KAFKA_SASL_USERNAME: _u, KAFKA_SASL_PASSWORD_FILE: _p, ...tlsOnly } = env;
  for (const mechanism of [{ KAFKA_SASL_MECHANISM: 'plain' }, { KAFKA_SASL_MECHANISM: 'scram-sha-256' }]) {
    const security = kafkaSecurityFromEnv({ ...env, ...mechanism });
    await probeKafka(createKafka({ clientId: 'tidings-test-sasl', brokers: [brokers], security }));
  }
  const oauth = kafkaSecurityFromEnv({
    ...tlsOnly,
    KAFKA_SASL_MECHANISM: 'oauthbearer',
    KAFKA_SASL_OAUTHBEARER_TOKEN_FILE: tokenFile,
  });
  await probeKafka(createKafka({ clientId: 'tidings-test-sasl', brokers: [brokers], security: oauth }));
});

describe('wrong credentials', () => {
  const sasl = LISTENERS['SASL_SSL with SCRAM-SHA-512']!;
  const mtls = LISTENERS['mTLS (client certificate)']!;
  const wrongPassword = join(scratch, 'wrong-password');
  writeFileSync(wrongPassword, 'not-the-password\n');

  test('a wrong SASL password stops a service at start-up, naming the variables', async () => {
    const dc = uniqueDc();
    const relay = await startRelay(dc, `${dc}-relay`, sasl.brokers, {
      ...sasl.env,
      KAFKA_SASL_PASSWORD_FILE: wrongPassword,
    });
    assert.notEqual(await relay.exited, 0);
    assert.match(relay.output(), /refused the scram-sha-512 login of \\"tidings\\".*KAFKA_SASL_PASSWORD/);
  });

  test('no client certificate on the mTLS listener stops a service at start-up, naming the variables', async () => {
    const dc = uniqueDc();
    const { KAFKA_TLS_CERT_FILE: _cert, KAFKA_TLS_KEY_FILE: _key, ...withoutCertificate } = mtls.env;
    const relay = await startRelay(dc, `${dc}-relay`, mtls.brokers, withoutCertificate);
    assert.notEqual(await relay.exited, 0);
    assert.match(
      relay.output(),
      /refused our client certificate: set KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE/,
    );
  });

  test('the CLI names the variables too', async () => {
    const run = await runTidingsWith(
      { ...process.env, ...sasl.env, KAFKA_SASL_PASSWORD_FILE: wrongPassword },
      '--brokers',
      sasl.brokers,
      'lag',
      '--samples',
      '1',
    );
    assert.equal(run.status, 1);
    assert.match(run.stderr, /refused the scram-sha-512 login.*KAFKA_SASL_PASSWORD/);
  });

  test('an unreadable secret file is a configuration error naming its variable', async () => {
    const dc = uniqueDc();
    const relay = await startRelay(dc, `${dc}-relay`, sasl.brokers, {
      ...sasl.env,
      KAFKA_SASL_PASSWORD_FILE: join(scratch, 'not-mounted'),
    });
    assert.equal(await relay.exited, 2);
    assert.match(relay.output(), /KAFKA_SASL_PASSWORD_FILE: cannot read ".*not-mounted" \(ENOENT\)/);
  });
});

/** HTTPS in front of the stack's registry, answering 401 unless the request carries `user:password`. */
async function startRegistryProxy(user: string, password: string): Promise<{ url: string; server: Server }> {
  const upstream = new URL(REGISTRY_URL);
  const expected = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const server = createHttpsServer(
    { key: readFileSync(secret('broker.key')), cert: readFileSync(secret('broker.crt')) },
    (req, res) => {
      if (req.headers.authorization !== expected) {
        res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic' });
        res.end(JSON.stringify({ error_code: 401, message: 'Unauthorized' }));
        return;
      }
      const { authorization: _, host: __, ...headers } = req.headers;
      const forward = httpRequest(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      forward.on('error', () => res.writeHead(502).end());
      req.pipe(forward);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `https://127.0.0.1:${port}${upstream.pathname}`, server };
}

describe('the schema registry over TLS with basic auth', () => {
  const password = 'registry-pw';
  let proxy: { url: string; server: Server };
  const ca = readFileSync(secret('ca.crt'), 'utf8');
  const access: RegistryAccess = { username: 'tidings', password, ca };

  test('the registry client and the serde reach it with the CA and the credentials, and not without', async () => {
    proxy = await startRegistryProxy('tidings', password);
    cleanups.push(() => new Promise((resolve) => proxy.server.close(() => resolve())));
    const latest = await createRegistryClient(proxy.url, access).latest('notify.event-value');
    assert.ok(latest && latest.id > 0);
    // The serde looks its own schema up through the registry library, not the client's own requests.
    assert.equal(
      await createSerde({ registryUrl: proxy.url, registryAccess: access }).schemaId('notify.event'),
      latest.id,
    );

    const wrong = createRegistryClient(proxy.url, { ...access, password: 'wrong' });
    await assert.rejects(
      wrong.latest('notify.event-value'),
      (e) => e instanceof RegistryError && e.status === 401,
    );
    await assert.rejects(
      createSerde({ registryUrl: proxy.url, registryAccess: { ...access, password: 'wrong' } }).schemaId(
        'notify.event',
      ),
      /401|Unauthorized/,
    );
    await assert.rejects(
      createRegistryClient(proxy.url, { username: 'tidings', password }).latest('notify.event-value'),
      /unreachable: unable to verify the first certificate/,
    );
  });

  test('a service configured with SCHEMA_REGISTRY_* decodes and encodes through it', async () => {
    const kafka = createKafka({ clientId: 'tidings-test-registry', brokers: BROKERS.eqiad });
    const dc = uniqueDc();
    cleanups.push(() => deleteDcTopics(kafka, dc));
    await createStreamTopics(kafka, dc, ['notify.event', 'notify.preference-change', 'notify.checkpoint'], 1);
    await relayTopics(kafka, dc, `${dc}-relay`);
    const publisher = createPublisher({
      brokers: BROKERS.eqiad,
      dc,
      registryUrl: proxy.url,
      registryAccess: access,
      producer: 'registry-test',
    });
    try {
      await publisher.publish('notify.event', {
        event_id: 'r1',
        type: 'test',
        category: 'test',
        recipients: ['u1'],
      });
    } finally {
      await publisher.close();
    }
    const passwordFile = join(scratch, 'registry-password');
    writeFileSync(passwordFile, `${password}\n`);
    const caFile = secret('ca.crt');
    const relay = await startRelay(dc, `${dc}-relay`, BROKERS.eqiad.join(','), {
      SCHEMA_REGISTRY_URL: proxy.url,
      SCHEMA_REGISTRY_USERNAME: 'tidings',
      SCHEMA_REGISTRY_PASSWORD_FILE: passwordFile,
      SCHEMA_REGISTRY_CA_FILE: caFile,
    });
    const [out] = await readTopic(
      kafka,
      topicFor(dc, 'notify.preference-change'),
      (m) => m.length >= 1,
      60_000,
    );
    assert.equal((await serde.decode('notify.preference-change', out!.value!)).user_id, 'r1');
    relay.child.kill('SIGTERM');
    assert.equal(await relay.exited, 0, relay.output());
  });
});
