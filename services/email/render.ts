/**
 * Renders mail from Handlebars templates in files:
 *   templates/<category>/<locale>.{subject,text,html}.hbs   one notification of that category
 *   templates/_default/<locale>.…                            categories without templates of their own
 *   templates/_bundle/<locale>.…                             an instant bundle (several items)
 *   templates/_digest/<locale>.…                             a daily or weekly digest
 * Folders starting with "_" cannot clash with a category: category names start with a letter.
 * A locale falls back to its language (de-AT → de), then to en; a category without a usable
 * template falls back to _default along the same chain.
 *
 * Escaping: HTML templates escape every {{value}}; subject and text are not HTML, so they are
 * compiled without escaping. The subject ends up in a header, so CR, LF and other control
 * characters are replaced after rendering, whatever the template or the data holds. URLs from
 * events are kept only if http(s), so a "javascript:" link never reaches an href.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';
import type { EmailSendKind, Notification } from '../../libs/schemas/types.generated.ts';

export const DEFAULT_TEMPLATE_DIR = fileURLToPath(new URL('./templates/', import.meta.url));
export const FALLBACK_LOCALE = 'en';

const PARTS = ['subject', 'text', 'html'] as const;
type Part = (typeof PARTS)[number];
type CompiledMessage = Record<Part, Handlebars.TemplateDelegate>;

export const DEFAULT_FOLDER = '_default';
export const BUNDLE_FOLDER = '_bundle';
export const DIGEST_FOLDER = '_digest';
const REQUIRED_FOLDERS = [DEFAULT_FOLDER, BUNDLE_FOLDER, DIGEST_FOLDER];

const FILE_NAME = /^([A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)\.(subject|text|html)\.hbs$/;
const FOLDER_NAME = /^_?[a-z][a-z0-9]*(-[a-z0-9]+)*$/;

export interface TemplateSet {
  /** Key: `<folder>/<locale>`. */
  readonly messages: ReadonlyMap<string, CompiledMessage>;
}

export interface RenderedMail {
  readonly subject: string;
  readonly text: string;
  readonly html: string;
  /** The template actually used, e.g. `_default/en`, for logs and the record's locale. */
  readonly folder: string;
  readonly locale: string;
}

export interface MailItem {
  readonly notification: Notification;
  /** meta.dt of the notify.email record: "when" in the mail. */
  readonly eventTime: number;
}

export interface RenderRequest {
  readonly kind: EmailSendKind;
  /** One for instant and transactional mail, several for bundles and digests, in display order. */
  readonly items: readonly MailItem[];
  readonly locale: string;
  readonly timezone: string;
  readonly siteName: string;
  /**
   * Link to the confirmation page, for every category of the mail as its List-Unsubscribe header;
   * null for transactional mail (nothing to unsubscribe from).
   */
  readonly unsubscribeUrl: string | null;
  /** One link per category when the mail mixes several; empty otherwise. */
  readonly unsubscribeCategories: readonly { readonly category: string; readonly url: string }[];
}

export class TemplateError extends Error {
  constructor(problems: readonly string[]) {
    super(`invalid email templates (${problems.length}):\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'TemplateError';
  }
}

// Separate environments: no helper or partial registered for one leaks into the other.
const htmlEngine = Handlebars.create();
const plainEngine = Handlebars.create();

/** Parses eagerly (Handlebars compiles lazily) so a syntax error stops start-up, not the first mail. */
function compile(part: Part, source: string): Handlebars.TemplateDelegate {
  const engine = part === 'html' ? htmlEngine : plainEngine;
  engine.parse(source);
  return engine.compile(source, { noEscape: part !== 'html' });
}

/** Reads and compiles every template at start-up; throws TemplateError naming each problem. */
export async function loadTemplates(dir: string = DEFAULT_TEMPLATE_DIR): Promise<TemplateSet> {
  const problems: string[] = [];
  const found = new Map<string, Partial<CompiledMessage>>();
  for (const folder of await readdir(dir)) {
    if (!FOLDER_NAME.test(folder)) {
      problems.push(`${folder}: not a category name or one of ${REQUIRED_FOLDERS.join(', ')}`);
      continue;
    }
    for (const file of await readdir(join(dir, folder))) {
      const match = FILE_NAME.exec(file);
      if (!match) {
        problems.push(`${folder}/${file}: expected <locale>.<subject|text|html>.hbs`);
        continue;
      }
      const [, locale = '', part = 'text'] = match;
      const key = `${folder}/${locale}`;
      const message = found.get(key) ?? {};
      try {
        message[part as Part] = compile(part as Part, await readFile(join(dir, folder, file), 'utf8'));
      } catch (err) {
        problems.push(`${folder}/${file}: ${(err as Error).message}`);
      }
      found.set(key, message);
    }
  }
  const messages = new Map<string, CompiledMessage>();
  for (const [key, message] of found) {
    const missing = PARTS.filter((part) => !message[part]);
    if (missing.length > 0) problems.push(`${key}: missing ${missing.map((p) => `${p}.hbs`).join(', ')}`);
    else messages.set(key, message as CompiledMessage);
  }
  for (const folder of REQUIRED_FOLDERS) {
    if (!messages.has(`${folder}/${FALLBACK_LOCALE}`))
      problems.push(`${folder}/${FALLBACK_LOCALE}: required as the last fallback`);
  }
  if (problems.length > 0) throw new TemplateError(problems);
  return { messages };
}

function localeChain(locale: string): string[] {
  const language = locale.split('-')[0] ?? locale;
  return [...new Set([locale, language, FALLBACK_LOCALE])];
}

function folderFor(kind: EmailSendKind, category: string): string[] {
  if (kind === 'bundle') return [BUNDLE_FOLDER];
  if (kind === 'daily' || kind === 'weekly') return [DIGEST_FOLDER];
  return [category, DEFAULT_FOLDER];
}

/** Folder and locale of the template a message uses, following the fallback chain. */
export function resolveTemplate(
  set: TemplateSet,
  kind: EmailSendKind,
  category: string,
  locale: string,
): { folder: string; locale: string; message: CompiledMessage } {
  for (const folder of folderFor(kind, category)) {
    for (const candidate of localeChain(locale)) {
      const message = set.messages.get(`${folder}/${candidate}`);
      if (message) return { folder, locale: candidate, message };
    }
  }
  // loadTemplates guarantees every required folder has the fallback locale.
  throw new Error(`no template for ${kind} ${category} in ${locale}`);
}

/** Replaces line breaks and other control characters: a header value must stay on one line. */
export function headerSafe(value: string): string {
  return value
    .replace(/[\p{Cc}\u2028\u2029]+/gu, ' ')
    .replace(/ {2,}/g, ' ')
    .trim();
}

/** http(s) URLs only; anything else (javascript:, data:, relative) becomes empty. */
export function safeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'https:' || parsed.protocol === 'http:' ? parsed.href : '';
  } catch {
    return '';
  }
}

// Building a formatter costs far more than formatting with one; a digest run meets few pairs.
const timeFormatters = new Map<string, Intl.DateTimeFormat>();

function timeFormatter(locale: string, timeZone: string): Intl.DateTimeFormat {
  const key = `${locale}\u0000${timeZone}`;
  let formatter = timeFormatters.get(key);
  if (!formatter) {
    const options: Intl.DateTimeFormatOptions = { dateStyle: 'medium', timeStyle: 'short', timeZone };
    try {
      formatter = new Intl.DateTimeFormat(locale, options);
    } catch {
      formatter = new Intl.DateTimeFormat(FALLBACK_LOCALE, { ...options, timeZone: 'UTC' });
    }
    timeFormatters.set(key, formatter);
  }
  return formatter;
}

export function renderMail(set: TemplateSet, request: RenderRequest): RenderedMail {
  const first = request.items[0];
  if (!first) throw new Error('cannot render a mail without notifications');
  const chosen = resolveTemplate(set, request.kind, first.notification.category, request.locale);
  const when = timeFormatter(chosen.locale, request.timezone);
  const items = request.items.map(({ notification: n, eventTime }) => ({
    title: n.title,
    url: safeUrl(n.url),
    agent: n.agent?.name ?? '',
    category: n.category,
    eventType: n.event_type,
    extra: n.extra,
    when: when.format(eventTime),
  }));
  const context = {
    weekly: request.kind === 'weekly',
    site: request.siteName,
    item: items[0],
    items,
    count: items.length,
    unsubscribeUrl: request.unsubscribeUrl === null ? '' : safeUrl(request.unsubscribeUrl),
    // What the header's one-click link (and unsubscribeUrl) turns off, for the footer to say.
    unsubscribeScope: [...new Set(items.map((i) => i.category))].join(', '),
    categoryLinks: request.unsubscribeCategories.map((link) => ({ ...link, url: safeUrl(link.url) })),
  };
  return {
    subject: headerSafe(chosen.message.subject(context)),
    text: chosen.message.text(context),
    html: chosen.message.html(context),
    folder: chosen.folder,
    locale: chosen.locale,
  };
}
