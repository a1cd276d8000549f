-- The audit log's hash chain (src/domain/audit-chain.ts is the definition; the tests hold this SQL to it).
-- Built-in sha256() (PostgreSQL 11+), not pgcrypto: PGlite has it too.
CREATE OR REPLACE FUNCTION audit_log_canonical(p_id bigint, p_at timestamptz, p_actor text, p_action text, p_subject text, p_detail jsonb, p_source text)
RETURNS text LANGUAGE sql STABLE AS $$
  SELECT '{"action":' || coalesce(to_json(p_action)::text, 'null')
    || ',"actor":' || coalesce(to_json(p_actor)::text, 'null')
    || ',"at":' || coalesce(to_json(to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text, 'null')
    || ',"detail":' || coalesce(to_json(p_detail::text)::text, 'null')
    || ',"id":' || coalesce(p_id::text, 'null')
    || ',"source":' || coalesce(to_json(p_source)::text, 'null')
    || ',"subject":' || coalesce(to_json(p_subject)::text, 'null')
    || '}'
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION audit_log_row_hash(p_prev text, p_canonical text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT encode(sha256(convert_to(p_prev || E'\n' || p_canonical, 'UTF8')), 'hex')
$$;
--> statement-breakpoint
-- Existing rows are chained in id order, from the genesis value. The append-only trigger is set aside for this one
-- transaction (the migration's): the rows' content is not touched, only the two new columns are filled.
ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_or_delete;
--> statement-breakpoint
DO $$
DECLARE
  r record;
  prev text := repeat('0', 64);
BEGIN
  FOR r IN SELECT id, at, actor, action, subject, detail, source FROM audit_log ORDER BY id LOOP
    UPDATE audit_log
      SET prev_hash = prev,
          row_hash = audit_log_row_hash(prev, audit_log_canonical(r.id, r.at, r.actor, r.action, r.subject, r.detail, r.source))
      WHERE id = r.id
      RETURNING row_hash INTO prev;
  END LOOP;
END;
$$;
--> statement-breakpoint
ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update_or_delete;
--> statement-breakpoint
INSERT INTO audit_chain_head (one, last_id, row_hash)
  VALUES (true, (SELECT max(id) FROM audit_log), coalesce((SELECT row_hash FROM audit_log ORDER BY id DESC LIMIT 1), repeat('0', 64)));
--> statement-breakpoint
-- A row the trigger did not chain (it was disabled, or session_replication_role skipped it) is refused, and no two
-- rows may follow the same row: a fork is impossible by constraint, not only by the lock below.
ALTER TABLE audit_log ADD CONSTRAINT audit_log_hashes_check CHECK (prev_hash ~ '^[0-9a-f]{64}$' AND row_hash ~ '^[0-9a-f]{64}$');
--> statement-breakpoint
ALTER TABLE audit_log ADD CONSTRAINT audit_log_prev_hash_unique UNIQUE (prev_hash);
--> statement-breakpoint
-- Why the chain cannot fork under concurrent writers: a transaction's first audit insert takes the head row's lock
-- (FOR UPDATE) and holds it to the transaction's end, so appends happen one transaction at a time. Under READ
-- COMMITTED (patchbay's level) FOR UPDATE, after waiting, reads the head the previous appender committed; under
-- REPEATABLE READ or SERIALIZABLE it fails with 40001 rather than read a stale head (withTransaction retries).
-- The id is the head's plus one, given while the lock is held: ids are gapless, id order is chain order and commit
-- order, so a reader paging by id never finds a smaller id committing behind it.
-- The transaction's further inserts take the head from a transaction-local setting (stamped with the transaction
-- id, so a value set by hand or left over is never trusted) and the head row is written once, at commit, by a
-- deferred trigger: updating one row per insert made a 50,000-row transaction quadratic. A rolled-back append or
-- savepoint takes the setting and the head with it.
CREATE OR REPLACE FUNCTION audit_log_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  held text[] := string_to_array(current_setting('patchbay.audit_chain', true), ':');
  head_id bigint;
  head text;
BEGIN
  IF held IS NOT NULL AND array_length(held, 1) = 3 AND held[1] = txid_current()::text THEN
    head_id := held[2]::bigint;
    head := held[3];
  ELSE
    SELECT last_id, row_hash INTO head_id, head FROM audit_chain_head WHERE one FOR UPDATE;
    IF NOT FOUND THEN
      -- The head is a cache of the last row: rebuilt from it when someone emptied the table by hand.
      INSERT INTO audit_chain_head (one, last_id, row_hash)
        VALUES (true, (SELECT max(id) FROM audit_log), coalesce((SELECT row_hash FROM audit_log ORDER BY id DESC LIMIT 1), repeat('0', 64)))
        ON CONFLICT (one) DO NOTHING;
      SELECT last_id, row_hash INTO head_id, head FROM audit_chain_head WHERE one FOR UPDATE;
    END IF;
  END IF;
  NEW.id := coalesce(head_id, 0) + 1;
  NEW.prev_hash := head;
  NEW.row_hash := audit_log_row_hash(head, audit_log_canonical(NEW.id, NEW.at, NEW.actor, NEW.action, NEW.subject, NEW.detail, NEW.source));
  PERFORM set_config('patchbay.audit_chain', txid_current() || ':' || NEW.id || ':' || NEW.row_hash, true);
  RETURN NEW;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_chain();
--> statement-breakpoint
-- At commit, the transaction's last audit row becomes the head (the others find they are not the last and pass).
CREATE OR REPLACE FUNCTION audit_chain_head_save() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('patchbay.audit_chain', true) = txid_current() || ':' || NEW.id || ':' || NEW.row_hash THEN
    UPDATE audit_chain_head SET last_id = NEW.id, row_hash = NEW.row_hash WHERE one;
  END IF;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE CONSTRAINT TRIGGER audit_log_chain_head AFTER INSERT ON audit_log DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW EXECUTE FUNCTION audit_chain_head_save();
