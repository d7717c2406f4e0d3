-- Rebuild speed (docs/architecture.md, "Rebuilds"): a person's preferences are part of their
-- notify.user record and replaced with it as a whole, so they live in the person's row. A fetched
-- batch of people is then one INSERT ... ON CONFLICT of one row each: no second table to rewrite,
-- no per-row foreign-key check (which cost as much as the rest of the rewrite), and the version
-- comparison that decides the row decides its preferences in the same statement.
-- A JSON array of {category, channel, enabled}, one per (category, channel); '[]' for a marker.
ALTER TABLE users ADD COLUMN preferences jsonb NOT NULL DEFAULT '[]';

UPDATE users u SET preferences = p.preferences
FROM (SELECT user_id,
             jsonb_agg(jsonb_build_object('category', category, 'channel', channel, 'enabled', enabled)) AS preferences
      FROM user_preferences GROUP BY user_id) p
WHERE u.user_id = p.user_id;

DROP TABLE user_preferences;
