/**
 * Schema names end up in SQL text and in the connection's search_path option, where quoting
 * rules differ; allowing only plain lower-case identifiers makes both safe without quoting.
 */
const PLAIN_IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

export function assertSchemaName(schema: string): string {
  if (!PLAIN_IDENTIFIER.test(schema)) {
    throw new Error(
      `schema name ${JSON.stringify(schema)} is not a plain identifier: use lower-case letters, digits and _ (at most 63, not starting with a digit)`,
    );
  }
  return schema;
}
