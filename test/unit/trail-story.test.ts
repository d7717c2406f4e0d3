/** From trail records to the story of each notification: order, each decision once, where it stands. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NotifyStatus } from '../../libs/schemas/types.generated.ts';
import { describeState, tellStories } from '../../libs/trail/story.ts';
import { decisionId } from '../../libs/trail/trail.ts';

const T0 = Date.parse('2026-12-01T08:00:00Z');

function status(overrides: Partial<NotifyStatus> & Pick<NotifyStatus, 'stage' | 'outcome'>): NotifyStatus {
  const base = {
    event_id: 'ev-1',
    notification_id: 'n-email',
    recipient_id: 'u1',
    channel: 'email' as const,
    reason: null,
    ref: null,
    detail: null,
    due_at: null,
    at: T0,
    ...overrides,
  };
  const id = decisionId(
    base.stage,
    {
      eventId: base.event_id,
      recipientId: base.recipient_id,
      notificationId: base.notification_id,
      outcome: base.outcome,
    },
    base.reason,
    base.ref,
  );
  return {
    meta: { id, dt: T0, stream: 'notify.status', dc: 'eqiad', producer: 'test', request_id: null },
    ...base,
  };
}

test('steps come in time order, whatever order the records were read in', () => {
  const [story] = tellStories([
    status({ stage: 'sender', outcome: 'accepted', at: T0 + 2_000, detail: '250 ok' }),
    status({ stage: 'router', outcome: 'emitted', at: T0 }),
    status({ stage: 'digest', outcome: 'sent_now', at: T0 + 1_000 }),
  ]);
  assert.deepEqual(
    story!.steps.map((s) => `${s.stage}:${s.outcome}`),
    ['router:emitted', 'digest:sent_now', 'sender:accepted'],
  );
  assert.equal(describeState(story!.state), 'delivered (accepted)');
});

test('a decision read twice (a replay, the mirrored copy) is one step', () => {
  const emitted = status({ stage: 'router', outcome: 'emitted' });
  const mirrored = { ...emitted, meta: { ...emitted.meta, dc: 'codfw' }, at: T0 + 5 };
  const stories = tellStories([emitted, mirrored, emitted]);
  assert.equal(stories.length, 1);
  assert.equal(stories[0]!.steps.length, 1);
  assert.equal(stories[0]!.steps[0]!.dc, 'eqiad');
});

test('a skip says why; a pending digest says until when', () => {
  const stories = tellStories([
    status({
      stage: 'router',
      outcome: 'skipped',
      reason: 'channel-off',
      notification_id: 'n-push',
      channel: 'push',
    }),
    status({ stage: 'router', outcome: 'emitted' }),
    status({ stage: 'digest', outcome: 'queued', at: T0 + 1, due_at: Date.parse('2026-12-02T07:00:00Z') }),
  ]);
  const byChannel = new Map(stories.map((s) => [s.channel, describeState(s.state)]));
  assert.equal(byChannel.get('push'), 'not delivered: skipped, channel-off');
  assert.equal(byChannel.get('email'), 'pending: queued until 2026-12-02T07:00:00.000Z');
});

test('a pending step says what it waits for', () => {
  const [story] = tellStories([
    status({ stage: 'router', outcome: 'emitted' }),
    status({
      stage: 'digest',
      outcome: 'queued',
      reason: 'daily-digest',
      at: T0 + 1,
      due_at: Date.parse('2026-12-02T07:04:00Z'),
      detail: 'the 08:00 daily digest, Europe/Berlin',
    }),
  ]);
  assert.equal(
    describeState(story!.state),
    'pending: queued until 2026-12-02T07:04:00.000Z (the 08:00 daily digest, Europe/Berlin)',
  );
});

test("a replay's duplicate skip leaves the story as it was", () => {
  const story = tellStories([
    status({ stage: 'router', outcome: 'emitted' }),
    status({ stage: 'sender', outcome: 'accepted', at: T0 + 10 }),
  ]);
  const replayed = tellStories([
    status({ stage: 'router', outcome: 'emitted' }),
    status({ stage: 'sender', outcome: 'accepted', at: T0 + 10 }),
    status({ stage: 'router', outcome: 'skipped', reason: 'duplicate-event', at: T0 + 60_000 }),
  ]);
  assert.deepEqual(replayed, story);
  assert.equal(describeState(story[0]!.state), 'delivered (accepted)');
  // Routed before the trail saw it: the duplicate is all there is to tell.
  const [onlyReplay] = tellStories([
    status({ stage: 'router', outcome: 'skipped', reason: 'duplicate-event' }),
  ]);
  assert.equal(describeState(onlyReplay!.state), 'not delivered: skipped, duplicate-event');
});

test('a bounce after acceptance stops the story', () => {
  const [story] = tellStories([
    status({ stage: 'sender', outcome: 'accepted' }),
    status({ stage: 'bounce', outcome: 'bounced', reason: 'hard', at: T0 + 100 }),
  ]);
  assert.equal(describeState(story!.state), 'not delivered: bounced, hard');
});

test('decisions before any channel are grouped per event and recipient', () => {
  const stories = tellStories([
    status({ stage: 'router', outcome: 'held', notification_id: null, channel: null, recipient_id: 'u1' }),
    status({ stage: 'router', outcome: 'held', notification_id: null, channel: null, recipient_id: 'u2' }),
  ]);
  assert.deepEqual(
    stories.map((s) => [s.recipientId, describeState(s.state)]),
    [
      ['u1', 'pending: held'],
      ['u2', 'pending: held'],
    ],
  );
});
