CREATE TABLE "outcome_stamps" (
	"scope" text NOT NULL,
	"shard" smallint NOT NULL,
	"epoch" uuid DEFAULT gen_random_uuid() NOT NULL,
	"version" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "outcome_stamps_scope_shard_pk" PRIMARY KEY("scope","shard")
);
--> statement-breakpoint
-- Bumps the stamps of these scopes, in the caller's transaction: a reader sees the new stamp exactly when it can see
-- the change. The shard is the backend's, so run workers saving side by side rarely wait on one another's row; the
-- scopes go in one order, so two writers never take the same two rows in opposite orders.
CREATE FUNCTION outcome_stamps_bump(p_scopes text[]) RETURNS void LANGUAGE sql AS $$
  INSERT INTO outcome_stamps (scope, shard, version)
  SELECT s, (pg_backend_pid() % 32)::smallint, 1 FROM unnest(p_scopes) AS s ORDER BY s
  ON CONFLICT (scope, shard) DO UPDATE SET version = outcome_stamps.version + 1
$$;
--> statement-breakpoint
-- A run counts towards its release's outcomes while it is succeeded or failed: any run inserted or deleted as one
-- changes them. Once per statement (a sweep inserts a thousand runs in one), whatever its rows. One function for both:
-- each trigger names its transition table changed_runs (the rows inserted, or the rows deleted).
CREATE FUNCTION runs_outcome_stamp_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM outcome_stamps_bump(array(SELECT DISTINCT 'runs:' || release_id FROM changed_runs
    WHERE release_id IS NOT NULL AND state IN ('succeeded', 'failed')));
  RETURN NULL;
END $$;
--> statement-breakpoint
-- An update is one row at a time (a run worker saving a step), and most steps are neither to nor from succeeded or
-- failed: a row trigger whose WHEN rules those out costs them nothing (a statement trigger with transition tables
-- cost every save ~60 us). A transaction bumps each release once, however many of its runs it settles (a setting
-- local to the transaction says it did; a savepoint rolled back undoes both). Written out rather than through
-- outcome_stamps_bump: a terminal save is the run worker's hottest statement, and this halves what it adds to it.
CREATE FUNCTION runs_outcome_stamp_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  release text;
BEGIN
  FOREACH release IN ARRAY array[NEW.release_id, CASE WHEN OLD.release_id IS DISTINCT FROM NEW.release_id THEN OLD.release_id END] LOOP
    -- A setting's name takes letters, digits and underscores only: a release id's hash.
    IF release IS NOT NULL AND current_setting('patchbay.outcome_stamped_' || md5(release), true) IS DISTINCT FROM 'yes' THEN
      INSERT INTO outcome_stamps (scope, shard, version) VALUES ('runs:' || release, (pg_backend_pid() % 32)::smallint, 1)
        ON CONFLICT (scope, shard) DO UPDATE SET version = outcome_stamps.version + 1;
      PERFORM set_config('patchbay.outcome_stamped_' || md5(release), 'yes', true);
    END IF;
  END LOOP;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER runs_outcome_stamp_insert AFTER INSERT ON runs REFERENCING NEW TABLE AS changed_runs
  FOR EACH STATEMENT EXECUTE FUNCTION runs_outcome_stamp_rows();
--> statement-breakpoint
CREATE TRIGGER runs_outcome_stamp_update AFTER UPDATE ON runs
  FOR EACH ROW WHEN (OLD.state IN ('succeeded', 'failed') OR NEW.state IN ('succeeded', 'failed'))
  EXECUTE FUNCTION runs_outcome_stamp_update();
--> statement-breakpoint
CREATE TRIGGER runs_outcome_stamp_delete AFTER DELETE ON runs REFERENCING OLD TABLE AS changed_runs
  FOR EACH STATEMENT EXECUTE FUNCTION runs_outcome_stamp_rows();
--> statement-breakpoint
-- Emptying runs at once leaves no row to compare: every release's outcomes may have changed.
CREATE FUNCTION runs_outcome_stamp_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM outcome_stamps_bump(array(SELECT DISTINCT scope FROM outcome_stamps WHERE scope LIKE 'runs:%'));
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER runs_outcome_stamp_truncate AFTER TRUNCATE ON runs FOR EACH STATEMENT EXECUTE FUNCTION runs_outcome_stamp_truncate();
--> statement-breakpoint
-- An outcome carries its device's OS (ring msp's tested OSes are read from it).
CREATE FUNCTION devices_outcome_stamp_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM new_devices n JOIN old_devices o ON o.id = n.id WHERE n.os IS DISTINCT FROM o.os) THEN
    PERFORM outcome_stamps_bump(array['devices:os']);
  END IF;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER devices_outcome_stamp_update AFTER UPDATE ON devices REFERENCING OLD TABLE AS old_devices NEW TABLE AS new_devices
  FOR EACH STATEMENT EXECUTE FUNCTION devices_outcome_stamp_update();
--> statement-breakpoint
-- Releases with outcomes already stored start with a stamp: without one their outcomes would be read every time.
INSERT INTO outcome_stamps (scope, shard, version)
  SELECT DISTINCT 'runs:' || release_id, 0::smallint, 1 FROM runs WHERE release_id IS NOT NULL AND state IN ('succeeded', 'failed');
