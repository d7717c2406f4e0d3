/**
 * Who an address belongs to, from notify.user: a complaint names an address, the preference to
 * turn off belongs to a person. Several people may share an address; all of them get the mail.
 */
import type pg from 'pg';
import { addressHash } from '../../libs/mail/verp.ts';

/** Applies one notify.user record: the person's current confirmed address, or none. */
export async function rememberPerson(db: pg.Pool, userId: string, email: string | null): Promise<void> {
  if (email === null) {
    await db.query('DELETE FROM people WHERE user_id = $1', [userId]);
    return;
  }
  await db.query(
    `INSERT INTO people (user_id, address_hash) VALUES ($1, $2)
     ON CONFLICT (user_id) DO UPDATE SET address_hash = EXCLUDED.address_hash, updated_at = now()`,
    [userId, addressHash(email)],
  );
}

/**
 * A notify.user tombstone erases the person: bounce forgets them here and in the address state it
 * kept from reports (the suppression of the address itself stays: it is about mailing it).
 */
export async function erasePerson(db: pg.Pool, userId: string): Promise<void> {
  await db.query('DELETE FROM people WHERE user_id = $1', [userId]);
  await db.query('UPDATE addresses SET recipient_id = NULL WHERE recipient_id = $1', [userId]);
}

export async function peopleAt(db: pg.Pool, hash: string): Promise<string[]> {
  const { rows } = await db.query<{ user_id: string }>(
    'SELECT user_id FROM people WHERE address_hash = $1 ORDER BY user_id',
    [hash],
  );
  return rows.map((r) => r.user_id);
}
