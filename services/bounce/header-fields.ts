/**
 * RFC 822-style field blocks, as found in message/delivery-status and message/feedback-report
 * parts and in the header sections of returned messages. mailparser hands these parts over as
 * opaque content, so they are read here.
 *
 * Everything here is written by whoever sent the report, so it is bounded before any pattern sees
 * it: a field value is cut at MAX_FIELD_CHARS (folded lines included), an address at
 * MAX_ADDRESS_CHARS, and every scan is linear (no pattern that can retry from each position).
 */

/** RFC 5322's line limit is 998; a folded field may run to a few lines, never to kilobytes. */
export const MAX_FIELD_CHARS = 4000;
/** RFC 5321: 64 for the local part, 255 for the domain, plus brackets and a display name's room. */
const MAX_ADDRESS_CHARS = 1000;

/** Field values by lower-cased name, in order; folded lines are joined with one space. */
export type HeaderFields = ReadonlyMap<string, readonly string[]>;

/**
 * Blocks separated by blank lines: an RFC 3464 report is a per-message block then one per recipient.
 * Stops after `max` non-empty blocks, so a report of 60,000 groups costs no more than `max`.
 */
export function parseFieldGroups(text: string, max = Number.POSITIVE_INFINITY): HeaderFields[] {
  const groups: HeaderFields[] = [];
  for (const block of text.replace(/\r\n?/g, '\n').split(/\n[ \t]*\n/)) {
    if (groups.length >= max) break;
    const fields = parseFields(block);
    if (fields.size > 0) groups.push(fields);
  }
  return groups;
}

/** The header section of a message (everything before the first blank line). */
export function parseHeaderSection(message: string): HeaderFields {
  const text = message.replace(/\r\n?/g, '\n').replace(/^\n+/, '');
  const end = text.search(/\n[ \t]*\n/);
  return parseFields(end < 0 ? text : text.slice(0, end));
}

function parseFields(block: string): HeaderFields {
  const fields = new Map<string, string[]>();
  let current: { name: string; value: string } | null = null;
  const flush = () => {
    if (!current) return;
    const values = fields.get(current.name) ?? [];
    values.push(current.value.trim());
    fields.set(current.name, values);
  };
  for (const line of block.split('\n')) {
    if ((line[0] === ' ' || line[0] === '\t') && current) {
      if (current.value.length < MAX_FIELD_CHARS)
        current.value = `${current.value} ${line.slice(0, MAX_FIELD_CHARS).trim()}`.slice(0, MAX_FIELD_CHARS);
      continue;
    }
    flush();
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    current = FIELD_NAME.test(name)
      ? { name: name.toLowerCase(), value: line.slice(colon + 1, colon + 1 + MAX_FIELD_CHARS) }
      : null;
  }
  flush();
  return fields;
}

export const firstField = (fields: HeaderFields, name: string): string | null =>
  fields.get(name)?.[0] ?? null;

/** RFC 5322 field names: printable ASCII except ":" (the colon ends the name, so none is in it). */
const FIELD_NAME = /^[!-~]{1,200}$/;

/**
 * The address in a field like `rfc822; <a@b.c>`, `<a@b.c>` or `Name <a@b.c>`; null if none. Read
 * token by token: the first `<…@…>` wins, else the first bare token with an "@" inside it.
 */
export function addressIn(value: string | null): string | null {
  if (!value) return null;
  const capped = value.slice(0, MAX_ADDRESS_CHARS);
  const typed = /^\s*[a-z0-9-]{1,32}\s*;/i.exec(capped);
  const rest = typed ? capped.slice(typed[0].length) : capped;
  for (const segment of rest.split('<').slice(1)) {
    const end = segment.indexOf('>');
    const inside = end < 0 ? '' : segment.slice(0, end);
    if (hasInnerAt(inside) && !/\s/.test(inside)) return inside;
  }
  for (const token of rest.split(/[\s<>;,"]+/)) {
    if (hasInnerAt(token)) return token.replace(/[.:]+$/, '');
  }
  return null;
}

/** An "@" with something on both sides. */
const hasInnerAt = (text: string): boolean => {
  const at = text.indexOf('@', 1);
  return at > 0 && at < text.length - 1;
};
