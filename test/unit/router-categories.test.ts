import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  CategoryRegistryError,
  loadCategoryRegistry,
  parseCategoryRegistry,
} from '../../services/router/categories.ts';

function problemsOf(raw: unknown): readonly string[] {
  try {
    parseCategoryRegistry(raw, 'test.json');
  } catch (err) {
    assert.ok(err instanceof CategoryRegistryError, `expected CategoryRegistryError, got ${err}`);
    return err.problems;
  }
  assert.fail('expected the registry to be rejected');
}

const valid = { priority: 1, channels: { web: 'on' } };

test('the shipped registry loads, with Echo’s talk-page rule and email-only transactional mail', async () => {
  const registry = await loadCategoryRegistry();
  const talk = registry.get('edit-user-talk');
  assert.equal(talk?.channels.get('web'), 'always');
  for (const name of ['password-reset', 'login-fail']) {
    const category = registry.get(name);
    assert.equal(category?.transactional, true, name);
    assert.deepEqual([...(category?.channels.keys() ?? [])], ['email'], name);
  }
});

test('a category is read with its defaults filled in and channels in web, email, push order', () => {
  const registry = parseCategoryRegistry(
    {
      categories: {
        mention: { priority: 2, channels: { push: 'off', web: 'on' }, throttle: { max: 5, per: '30m' } },
      },
    },
    'test.json',
  );
  assert.deepEqual(registry.get('mention'), {
    name: 'mention',
    priority: 2,
    channels: new Map([
      ['web', 'on'],
      ['push', 'off'],
    ]),
    transactional: false,
    emailDelivery: 'at_least_once',
    bundleKey: null,
    throttle: { max: 5, windowMs: 30 * 60_000 },
  });
});

test('a category may choose at-most-once email, but transactional mail is always at-least-once', () => {
  const registry = parseCategoryRegistry(
    {
      categories: { digestible: { priority: 3, channels: { email: 'on' }, email_delivery: 'at_most_once' } },
    },
    'test.json',
  );
  assert.equal(registry.get('digestible')?.emailDelivery, 'at_most_once');
  assert.deepEqual(
    problemsOf({
      categories: {
        'password-reset': {
          priority: 0,
          channels: { email: 'always' },
          transactional: true,
          email_delivery: 'at_most_once',
        },
        mention: { priority: 2, channels: { email: 'on' }, email_delivery: 'once' },
      },
    }),
    [
      'category "password-reset": email_delivery: transactional mail is always at_least_once (never lost at a crash); remove email_delivery',
      'category "mention": email_delivery: expected one of at_least_once, at_most_once, got "once"',
    ],
  );
});

test('every problem is reported at once, naming the category and the field', () => {
  const problems = problemsOf({
    categories: {
      mention: { priority: -1, channels: { web: 'yes', sms: 'on' } },
      thanks: { ...valid, throttle: { max: 0, per: 'soon' }, transactionl: true },
    },
  });
  assert.deepEqual(problems, [
    'category "mention": priority: expected an integer >= 0, got -1',
    'category "mention": channels.sms: unknown field; expected one of web, email, push',
    'category "mention": channels.web: expected one of always, on, off, got "yes"',
    'category "thanks": transactionl: unknown field; expected one of description, priority, channels, transactional, email_delivery, bundle_key, throttle',
    'category "thanks": throttle.max: expected an integer >= 1, got 0',
    'category "thanks": throttle.per: expected a duration such as "30m" or "1h", got "soon"',
  ]);
});

test('transactional categories cannot be bundled or throttled', () => {
  const problems = problemsOf({
    categories: {
      'password-reset': {
        priority: 0,
        channels: { web: 'on', email: 'always' },
        transactional: true,
        bundle_key: 'resets',
        throttle: { max: 3, per: '1h' },
      },
    },
  });
  assert.deepEqual(problems, [
    'category "password-reset": bundle_key: a transactional category is never bundled; remove bundle_key',
    'category "password-reset": throttle: a transactional category is never throttled; remove throttle',
  ]);
});

test('a throttled category needs the web channel to fold its excess into', () => {
  const problems = problemsOf({
    categories: { digest: { priority: 3, channels: { email: 'on' }, throttle: { max: 3, per: '1h' } } },
  });
  assert.equal(problems.length, 1);
  assert.match(problems[0] ?? '', /^category "digest": throttle: .*web/);
});

test('category names, channels and the top level are checked', () => {
  assert.deepEqual(problemsOf({ categories: { Mention: valid, empty: { priority: 1, channels: {} } } }), [
    'category "Mention": name: expected lower-case words joined by "-", e.g. edit-user-talk',
    'category "empty": channels: names no channel; a category needs at least one',
  ]);
  assert.deepEqual(problemsOf({ categories: {}, extra: 1 }), [
    'unknown top-level field "extra"; expected only categories',
  ]);
  assert.deepEqual(problemsOf({ categories: {} }), ['no categories: every event would be dead-lettered']);
  assert.equal(problemsOf([]).length, 1);
});

test('loading names the file, also when it is not JSON', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'router-categories-'));
  try {
    const path = join(dir, 'categories.json');
    await writeFile(path, '{"categories": {');
    await assert.rejects(loadCategoryRegistry(path), (err: Error) => {
      assert.ok(err instanceof CategoryRegistryError);
      assert.ok(err.message.includes(path));
      assert.match(err.message, /not valid JSON/);
      return true;
    });
    await writeFile(
      path,
      JSON.stringify({ categories: { x: { priority: 'high', channels: { web: 'on' } } } }),
    );
    await assert.rejects(
      loadCategoryRegistry(path),
      /category "x": priority: expected an integer >= 0, got "high"/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
