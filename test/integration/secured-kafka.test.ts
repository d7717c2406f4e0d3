/**
 * Tidings against the local stack's secured listeners (deploy/local/ctl.sh): SASL_SSL with SCRAM,
 * and TLS with a client certificate (mTLS). Over each, configured only through the variables an
 * operator sets (the password from a mounted file, KAFKA_SASL_PASSWORD_FILE): the publish library
 * publishes, a service consumes and produces, `tidings lag` and `tidings replay` work. Wrong
 * credentials stop a service at start-up, and the CLI, with an error naming the variable to fix.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { localPort } from '../../libs/config/common.ts';
import { kafkaSecurity, kafkaSecurityRules, kafkaSecuritySpec } from '../../libs/config/connectivity.ts';
import { loadConfig } from '../../libs/config/load.ts';
import { createKafka, type KafkaSecurity } from '../../libs/kafka/client.ts';
import { topicFor } from '../../libs/kafka/topics.ts';
import { createPublisher } from '../../libs/publish/publish.ts';
import { createSerde } from '../../libs/schemas/serde.ts';
import {
  createStreamTopics,
  deleteDcTopics,
  eventually,
  freePort,
  REGISTRY_URL,
  readTopic,
  runTidingsWith,
  serviceEnv,
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

/** The security an upstream app gets from the same variables, through the same loader. */
function securityOf(env: Record<string, string>): KafkaSecurity {
  return kafkaSecurity(loadConfig(kafkaSecuritySpec, env, { rules: kafkaSecurityRules }));
}

const serde = createSerde({ registryUrl: REGISTRY_URL });
const scratch = mkdtempSync(join(tmpdir(), 'tidings-secured-'));
const cleanups: (() => Promise<void>)[] = [];
const children = new Set<ChildProcess>();

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const cleanup of cleanups) await cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** The relay fixture (a runService service: notify.event in, notify.preference-change out). */
async function startRelay(
  dc: string,
  group: string,
  brokers: string,
  env: Record<string, string>,
): Promise<Started> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(import.meta.dirname, 'fixtures', 'relay-service.ts')], {
    env: serviceEnv(dc, port, {
      KAFKA_BROKERS: brokers,
      RELAY_NAME: group,
      CHECKPOINT_INTERVAL: '500ms',
      ...env,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  const exited = once(child, 'exit').then(([code]) => {
    children.delete(child);
    return code as number | null;
  });
  return { child, output: () => output, exited };
}

for (const [name, listener] of Object.entries(LISTENERS)) {
  describe(`over ${name}`, () => {
    const security = securityOf(listener.env);
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
