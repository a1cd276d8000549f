CREATE TABLE "audit_chain_head" (
	"one" boolean PRIMARY KEY DEFAULT true NOT NULL,
	"last_id" bigint,
	"row_hash" text NOT NULL
);
--> statement-breakpoint
ALTER TABLE "audit_log" ADD COLUMN "prev_hash" text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE "audit_log" ADD COLUMN "row_hash" text DEFAULT '' NOT NULL;