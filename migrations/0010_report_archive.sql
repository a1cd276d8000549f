CREATE TABLE "report_archive" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "report_archive_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"delivery_key" text NOT NULL,
	"client_id" text,
	"period_id" text NOT NULL,
	"kind" text NOT NULL,
	"format" text NOT NULL,
	"file_name" text NOT NULL,
	"mime_type" text NOT NULL,
	"content" "bytea" NOT NULL,
	"sha256" text NOT NULL,
	"sent_to" jsonb NOT NULL,
	"sent_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "report_archive_delivery_file_idx" ON "report_archive" USING btree ("delivery_key","file_name");--> statement-breakpoint
CREATE INDEX "report_archive_client_period_idx" ON "report_archive" USING btree ("client_id","period_id");--> statement-breakpoint
-- A sent report is evidence: once archived, its bytes and who got them are never changed or removed.
CREATE OR REPLACE FUNCTION report_archive_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'report_archive is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;
--> statement-breakpoint
CREATE TRIGGER report_archive_no_update_or_delete
  BEFORE UPDATE OR DELETE ON report_archive
  FOR EACH ROW EXECUTE FUNCTION report_archive_refuse_change();
--> statement-breakpoint
CREATE TRIGGER report_archive_no_truncate
  BEFORE TRUNCATE ON report_archive
  FOR EACH STATEMENT EXECUTE FUNCTION report_archive_refuse_change();
