/**
 * RFC 822-style field blocks, as found in message/delivery-status and message/feedback-report
 * parts and in the header sections of returned messages. mailparser hands these parts over as
 * opaque content, so they are read here.
 */

/** Field values by lower-cased name, in order; folded lines are joined with one space. */
export type HeaderFields = ReadonlyMap<string, readonly string[]>;

/** Blocks separated by blank lines: an RFC 3464 report is a per-message block then one per recipient. */
export function parseFieldGroups(text: string): HeaderFields[] {
  return text
    .replace(/\r\n?/g, '\n')
    .split(/\n[ \t]*\n/)
    .map(parseFields)
    .filter((fields) => fields.size > 0);
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
    if (/^[ \t]/.test(line) && current) {
      current.value += ` ${line.trim()}`;
      continue;
    }
    const match = /^([!-9;-~]+):(.*)$/.exec(line);
    flush();
    current = match ? { name: match[1]!.toLowerCase(), value: match[2]! } : null;
  }
  flush();
  return fields;
}

export const firstField = (fields: HeaderFields, name: string): string | null =>
  fields.get(name)?.[0] ?? null;

/** The address in a field like `rfc822; <a@b.c>`, `<a@b.c>` or `Name <a@b.c>`; null if none. */
export function addressIn(value: string | null): string | null {
  if (!value) return null;
  const typed = /^\s*[a-z0-9-]+\s*;(.*)$/i.exec(value);
  const rest = typed ? typed[1]! : value;
  const bracketed = /<([^<>\s]+@[^<>\s]+)>/.exec(rest);
  if (bracketed) return bracketed[1]!;
  const bare = /([^\s<>;,"]+@[^\s<>;,"]+)/.exec(rest);
  return bare ? bare[1]!.replace(/[.:]+$/, '') : null;
}
