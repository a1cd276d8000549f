ALTER TABLE "updates" DROP CONSTRAINT "updates_release_kb_key";--> statement-breakpoint
ALTER TABLE "updates" ALTER COLUMN "kb" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "cves" ADD COLUMN "removed_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "kev_entries" ADD COLUMN "catalog_released" text;--> statement-breakpoint
ALTER TABLE "kev_entries" ADD COLUMN "removed_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "releases" ADD COLUMN "model" jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "updates" ADD COLUMN "update_key" text;--> statement-breakpoint
-- Rows stored before this migration were all KBs: their key is the KB number.
UPDATE "updates" SET "update_key" = "kb" WHERE "update_key" IS NULL;--> statement-breakpoint
ALTER TABLE "updates" ALTER COLUMN "update_key" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "updates" ADD COLUMN "removed_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "updates_release_kb_idx" ON "updates" USING btree ("release_id","kb");--> statement-breakpoint
ALTER TABLE "updates" ADD CONSTRAINT "updates_release_update_key" UNIQUE("release_id","update_key");