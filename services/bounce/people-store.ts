/**
 * Who an address belongs to, from notify.user: a complaint names an address, the preference to
 * turn off belongs to a person. Several people may share an address; all of them get the mail.
 * Newest version wins (libs/convergence/version.ts), whatever order the records arrive in.
 */
import type pg from 'pg';
import { addressHash } from '../../libs/mail/verp.ts';
import type { NotifyUser } from '../../libs/schemas/types.generated.ts';

const VERSION_IS_NEWER = `(people.record_dt, people.erased, people.record_id COLLATE "C")
  < (excluded.record_dt, excluded.erased, excluded.record_id COLLATE "C")`;

/** Applies one notify.user record: the person's current confirmed address, or none. */
export async function rememberPerson(db: pg.Pool, user: NotifyUser): Promise<void> {
  await db.query(
    `INSERT INTO people (user_id, address_hash, record_dt, record_id)
     VALUES ($1, $2, to_timestamp($3 / 1000.0), $4)
     ON CONFLICT (user_id) DO UPDATE SET
       address_hash = excluded.address_hash, record_dt = excluded.record_dt, record_id = excluded.record_id,
       erased = false, updated_at = now()
     WHERE ${VERSION_IS_NEWER}`,
    [user.user_id, user.email === null ? null : addressHash(user.email), user.meta.dt, user.meta.id],
  );
}

/**
 * A person erased as of `erasedAt`: bounce forgets them here, in the address state it kept from
 * reports and in the messages it knows they were sent (the suppression of the address itself stays:
 * it is about mailing it).
 */
export async function erasePerson(db: pg.Pool, userId: string, erasedAt: number): Promise<void> {
  await db.query(
    `WITH marker AS (
       INSERT INTO people (user_id, address_hash, record_dt, record_id, erased)
       VALUES ($1, NULL, to_timestamp($2 / 1000.0), '', true)
       ON CONFLICT (user_id) DO UPDATE SET
         address_hash = NULL, record_dt = excluded.record_dt, record_id = '', erased = true, updated_at = now()
       WHERE ${VERSION_IS_NEWER})
     , forgotten_mail AS (DELETE FROM sent_mail WHERE recipient_id = $1)
     UPDATE addresses SET recipient_id = NULL WHERE recipient_id = $1`,
    [userId, erasedAt],
  );
}

export async function peopleAt(db: pg.Pool, hash: string): Promise<string[]> {
  const { rows } = await db.query<{ user_id: string }>(
    'SELECT user_id FROM people WHERE address_hash = $1 ORDER BY user_id',
    [hash],
  );
  return rows.map((r) => r.user_id);
}
