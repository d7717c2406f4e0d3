/**
 * The inbox's bell page in a real browser: playwright-core driving Debian's chromium
 * (CHROMIUM_PATH, default /usr/bin/chromium; `make test-browser` installs it when missing) against
 * an inbox process on the real stack. The page shows the unread badge, raises it when a new event
 * is published (live, no reload), lists the bundle in its dropdown, and clears the badge on "Mark
 * all as read". Screenshots go to test/browser/output/ (gitignored).
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { type Browser, chromium } from 'playwright-core';
import { DEFAULT_DATABASE_URL } from '../../libs/config/common.ts';
import {
  applyTestTopicPlan,
  deleteDcTopics,
  eventually,
  testKafka,
  testPublisher,
  uniqueDc,
} from '../integration/harness.ts';
import {
  INBOX_RETRY_DELAYS_MS,
  type InboxProcess,
  inboxToken,
  startInbox,
  webRecord,
} from '../integration/inbox-process.ts';

const OUTPUT = join(import.meta.dirname, 'output');
const kafka = testKafka('eqiad');
const db = new pg.Pool({ connectionString: DEFAULT_DATABASE_URL, max: 1 });
const dc = uniqueDc();
const schema = `inbox_${dc}`;
const publisher = testPublisher(dc, 'test');
let inbox: InboxProcess;
let browser: Browser;

before(async () => {
  await mkdir(OUTPUT, { recursive: true });
  await applyTestTopicPlan(kafka, dc, { services: ['inbox'], retryDelaysMs: INBOX_RETRY_DELAYS_MS });
  inbox = await startInbox({ dc, schema });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
  await inbox?.stop();
  await publisher.close();
  await deleteDcTopics(kafka, dc);
  await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db.end();
});

test('the bell shows the badge, rises live on a new event, and clears on "mark all as read"', async () => {
  const user = `u-${dc}`;
  const now = Date.now();
  const thanks = (i: number, name: string) =>
    webRecord(user, {
      dt: now - 60_000 + i,
      category: 'thank-you-edit',
      bundle_key: 'thank-you-edit',
      priority: 4,
      title: `${name} thanked you for your edit on Ada Lovelace`,
      agent: { id: name, name },
    });
  await publisher.publish('notify.web', thanks(0, 'Ann'));
  await publisher.publish('notify.web', thanks(1, 'Bob'));
  await eventually(async () => {
    const { rows } = await db.query(`SELECT 1 FROM ${schema}.notifications WHERE user_id = $1`, [user]);
    return rows.length === 2 ? true : undefined;
  }, 'two notifications stored');

  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(err.message));
  await page.goto(`${inbox.base}/#token=${await inboxToken(user)}`);
  const badge = page.locator('#badge-count');
  const badgeShows = (text: string, timeout = 10_000) =>
    page
      .locator('#badge-count')
      .filter({ hasText: new RegExp(`^${text}$`) })
      .waitFor({ timeout });
  await badgeShows('2');
  assert.equal(await page.getAttribute('#bell', 'aria-label'), 'Notifications, 2 unread');

  // A new event while the page is open: the badge rises without a reload.
  await publisher.publish(
    'notify.web',
    webRecord(user, {
      dt: now,
      title: 'Cy left a message on your talk page',
      agent: { id: 'c', name: 'Cy' },
    }),
  );
  await badgeShows('3', 20_000);

  await page.click('#bell');
  await page.locator('#list li').nth(1).waitFor();
  const items = await page.locator('#list li').allInnerTexts();
  assert.equal(items.length, 2, 'two entries: the talk message and the bundle of thanks');
  assert.match(items[0] ?? '', /Cy left a message/);
  assert.match(items[1] ?? '', /Bob thanked you .* and 1 more from Bob, Ann/);
  assert.equal(await page.locator('#list li.unread').count(), 2);
  await page.screenshot({ path: join(OUTPUT, 'inbox-open.png') });

  await page.click('#mark-all');
  await page.locator('#badge[data-count="0"]').waitFor({ state: 'attached' });
  assert.equal(await badge.isVisible(), false, 'the badge is gone');
  await page.locator('#list li.unread').first().waitFor({ state: 'detached' });
  await page.screenshot({ path: join(OUTPUT, 'inbox-read.png') });
  const { rows } = await db.query<{ unread: number }>(
    `SELECT unread FROM ${schema}.people WHERE user_id = $1`,
    [user],
  );
  assert.equal(rows[0]?.unread, 0, 'the read marks are stored, not only shown');
  assert.deepEqual(problems, []);
});
