import assert from 'node:assert/strict';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import type { Notification } from '../../libs/schemas/types.generated.ts';
import {
  headerSafe,
  loadTemplates,
  type RenderRequest,
  renderMail,
  resolveTemplate,
  safeUrl,
  type TemplateSet,
} from '../../services/email/render.ts';

const T = Date.UTC(2026, 10, 21, 12, 30);

function aNotification(overrides: Partial<Notification> = {}): Notification {
  return {
    notification_id: 'n1',
    event_id: 'ev-1',
    event_type: 'edit-user-talk',
    category: 'edit-user-talk',
    recipient_id: 'u1',
    agent: { id: 'a1', name: 'Alice' },
    title: 'Hello there',
    url: 'https://wiki.example/User_talk:Bob',
    extra: { section: 'Greetings' },
    priority: 1,
    bundle_key: 'edit-user-talk',
    locale: 'en',
    timezone: 'Europe/Berlin',
    ...overrides,
  };
}

type RequestOverrides = Partial<Omit<RenderRequest, 'items'>> & { notifications?: Notification[] };

function aRequest({ notifications = [aNotification()], ...overrides }: RequestOverrides = {}): RenderRequest {
  return {
    kind: 'instant',
    items: notifications.map((notification) => ({ notification, eventTime: T })),
    locale: 'en',
    timezone: 'Europe/Berlin',
    siteName: 'Wikipedia',
    unsubscribeUrl: 'https://mail.example.org/unsubscribe?token=k1.a.b',
    unsubscribeCategories: [],
    ...overrides,
  };
}

const XSS = '<script>alert(1)</script><img src=x onerror=alert(2)>';
const CRLF = 'Hi\r\nBcc: victim@example.org\r\n\r\n<b>body</b>';

let templates: TemplateSet;
before(async () => {
  templates = await loadTemplates();
});

describe('rendering the repository templates', () => {
  test('an instant talk-page mail names the agent, the section and links to the page', () => {
    const mail = renderMail(templates, aRequest());
    assert.equal(mail.subject, 'Alice left a message on your talk page in "Greetings"');
    assert.match(
      mail.text,
      /Alice left a message on your talk page on Wikipedia, in the section "Greetings"/,
    );
    assert.match(mail.text, /Read it: https:\/\/wiki\.example\/User_talk:Bob/);
    assert.match(mail.html, /<a href="https:\/\/wiki\.example\/User_talk:Bob">Read it<\/a>/);
    assert.match(
      mail.text,
      /Unsubscribe from talk page messages: https:\/\/mail\.example\.org\/unsubscribe\?token=k1\.a\.b/,
    );
    assert.equal(mail.folder, 'edit-user-talk');
  });

  test('event times are shown in the recipient’s timezone', () => {
    const mail = renderMail(templates, aRequest({ timezone: 'America/New_York' }));
    assert.match(mail.text, /7:30/);
    assert.match(renderMail(templates, aRequest()).text, /1:30/);
  });

  test('a German recipient gets the German template; a regional locale falls back to its language', () => {
    const mail = renderMail(templates, aRequest({ locale: 'de-AT' }));
    assert.equal(mail.locale, 'de');
    assert.match(mail.subject, /Alice hat dir eine Nachricht auf deiner Diskussionsseite hinterlassen/);
  });

  test('an unknown locale falls back to English', () => {
    const mail = renderMail(templates, aRequest({ locale: 'xx' }));
    assert.equal(mail.locale, 'en');
  });

  test('a category without templates uses the default ones', () => {
    const mention = aNotification({
      category: 'mention',
      event_type: 'mention',
      title: 'You were mentioned',
    });
    const mail = renderMail(templates, aRequest({ notifications: [mention] }));
    assert.equal(mail.folder, '_default');
    assert.equal(mail.subject, 'Alice: You were mentioned — Wikipedia');
  });

  test('a bundle lists every item with its link', () => {
    const items = [
      aNotification({ notification_id: 'n1', title: 'First' }),
      aNotification({ notification_id: 'n2', title: 'Second', agent: { id: 'a2', name: 'Bea' } }),
    ];
    const mail = renderMail(templates, aRequest({ kind: 'bundle', notifications: items }));
    assert.equal(mail.subject, '2 new notifications on Wikipedia');
    assert.match(mail.text, /\* Alice: First/);
    assert.match(mail.text, /\* Bea: Second/);
    assert.equal((mail.html.match(/<li>/g) ?? []).length, 2);
  });

  test('daily and weekly digests list several items and say which digest they are', () => {
    const items = ['One', 'Two', 'Three'].map((title, i) =>
      aNotification({ notification_id: `n${i}`, title }),
    );
    const daily = renderMail(templates, aRequest({ kind: 'daily', notifications: items }));
    assert.equal(daily.subject, 'Your daily digest from Wikipedia: 3 notifications');
    for (const title of ['One', 'Two', 'Three']) assert.match(daily.html, new RegExp(`>${title}</a>`));
    const weekly = renderMail(templates, aRequest({ kind: 'weekly', notifications: items, locale: 'de' }));
    assert.match(weekly.subject, /^Deine wöchentliche Zusammenfassung von Wikipedia: 3 Benachrichtigungen$/);
  });

  test('transactional mail has no unsubscribe footer', () => {
    const mail = renderMail(templates, aRequest({ kind: 'transactional', unsubscribeUrl: null }));
    assert.doesNotMatch(mail.text, /[Uu]nsubscribe/);
    assert.doesNotMatch(mail.html, /[Uu]nsubscribe/);
  });
});

describe('user-supplied fields cannot inject markup or headers', () => {
  const kinds = ['instant', 'bundle', 'daily', 'weekly', 'transactional'] as const;
  const categories = ['edit-user-talk', 'mention'];
  const hostile = aNotification({
    title: `${XSS}${CRLF}`,
    agent: { id: 'a1', name: `Mallory\r\nBcc: x@evil.example${XSS}` },
    extra: { section: `Sec\nTo: y@evil.example${XSS}` },
  });

  for (const kind of kinds) {
    for (const category of categories) {
      for (const locale of ['en', 'de']) {
        test(`${kind} ${category} ${locale}: HTML escaped, subject on one line`, () => {
          const mail = renderMail(
            templates,
            aRequest({
              kind,
              locale,
              notifications: [
                { ...hostile, category },
                { ...hostile, category },
              ],
            }),
          );
          assert.doesNotMatch(mail.html, /<script|<img|<b>body/);
          assert.match(mail.html, /&lt;script&gt;/);
          assert.doesNotMatch(mail.subject, /[\r\n]/);
          // Plain text: escaping belongs to HTML only, a subject must not show "&lt;".
          assert.doesNotMatch(mail.subject, /&lt;|&amp;/);
        });
      }
    }
  }

  test('the plain-text body is not HTML-escaped', () => {
    const mail = renderMail(
      templates,
      aRequest({ notifications: [aNotification({ title: 'Tom & Jerry <3' })] }),
    );
    assert.match(mail.text, /Tom & Jerry <3/);
    assert.match(mail.html, /Tom &amp; Jerry &lt;3/);
  });

  test('the subject keeps the user text but never a line break', () => {
    const mail = renderMail(
      templates,
      aRequest({ notifications: [aNotification({ agent: { id: 'a', name: CRLF } })] }),
    );
    assert.equal(
      mail.subject,
      'Hi Bcc: victim@example.org <b>body</b> left a message on your talk page in "Greetings"',
    );
  });

  test('javascript: and data: links never reach an href', () => {
    for (const url of ['javascript:alert(1)', 'JaVaScRiPt:alert(1)', 'data:text/html,<script>x</script>']) {
      const mail = renderMail(templates, aRequest({ notifications: [aNotification({ url })] }));
      assert.doesNotMatch(mail.html, /href="(?!https:\/\/mail\.example\.org)/i, url);
      assert.doesNotMatch(mail.text, /javascript|data:/i);
    }
  });
});

describe('helpers', () => {
  test('headerSafe removes CR, LF, NEL, line and paragraph separators and other control characters', () => {
    assert.equal(headerSafe('a\r\nb\nc\rd\u0085e\u2028f\u2029g\th\u0000i'), 'a b c d e f g h i');
  });

  test('safeUrl keeps http(s) only', () => {
    assert.equal(safeUrl('https://a.example/x?y=1'), 'https://a.example/x?y=1');
    assert.equal(safeUrl('javascript:alert(1)'), '');
    assert.equal(safeUrl('/relative'), '');
  });
});

describe('loading templates', () => {
  async function writeTemplates(files: Record<string, string>): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'tidings-templates-'));
    for (const [path, content] of Object.entries(files)) {
      await mkdir(join(dir, path, '..'), { recursive: true });
      await writeFile(join(dir, path), content);
    }
    return dir;
  }
  const complete = (folder: string, locale = 'en') => ({
    [`${folder}/${locale}.subject.hbs`]: `${folder} {{item.title}}`,
    [`${folder}/${locale}.text.hbs`]: '{{item.title}}',
    [`${folder}/${locale}.html.hbs`]: '<p>{{item.title}}</p>',
  });

  test('every problem is reported at once: missing parts, syntax errors, missing fallbacks, bad names', async () => {
    const dir = await writeTemplates({
      ...complete('_default'),
      ...complete('_bundle'),
      'mention/en.subject.hbs': 'x',
      'mention/en.text.hbs': '{{#if item.title}}unclosed',
      'mention/en.html.hbs': '<p/>',
      'mention/notes.txt': 'stray',
      'Bad_Folder/en.text.hbs': 'x',
    });
    await assert.rejects(loadTemplates(dir), (err: Error) => {
      assert.match(err.message, /mention\/en\.text\.hbs: Parse error/);
      assert.match(err.message, /mention\/notes\.txt: expected <locale>/);
      assert.match(err.message, /Bad_Folder: not a category name/);
      assert.match(err.message, /_digest\/en: required as the last fallback/);
      return true;
    });
  });

  test('a locale with only some parts is refused rather than mixing languages', async () => {
    const dir = await writeTemplates({
      ...complete('_default'),
      ...complete('_bundle'),
      ...complete('_digest'),
      'mention/de.subject.hbs': 'x',
    });
    await assert.rejects(loadTemplates(dir), /mention\/de: missing text\.hbs, html\.hbs/);
  });

  test('the chain goes locale, language, en, then the default category', async () => {
    const dir = await writeTemplates({
      ...complete('_default'),
      ...complete('_default', 'fr'),
      ...complete('_bundle'),
      ...complete('_digest'),
      ...complete('mention'),
      ...complete('mention', 'de'),
    });
    const set = await loadTemplates(dir);
    const pick = (category: string, locale: string) => {
      const { folder, locale: used } = resolveTemplate(set, 'instant', category, locale);
      return `${folder}/${used}`;
    };
    assert.equal(pick('mention', 'de-CH'), 'mention/de');
    assert.equal(pick('mention', 'fr'), 'mention/en');
    assert.equal(pick('thanks', 'fr-CA'), '_default/fr');
    assert.equal(pick('thanks', 'ja'), '_default/en');
  });
});
