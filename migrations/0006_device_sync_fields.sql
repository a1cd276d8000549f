ALTER TABLE "devices" ADD COLUMN "timezone" text;--> statement-breakpoint
ALTER TABLE "devices" ADD COLUMN "synced_from" text;