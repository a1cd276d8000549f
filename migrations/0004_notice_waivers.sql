CREATE TABLE "notice_waivers" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "notice_waivers_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"scope" text NOT NULL,
	"target" text NOT NULL,
	"reason" text NOT NULL,
	"actor" text NOT NULL,
	"source" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone,
	"revoked_by" text,
	CONSTRAINT "notice_waivers_scope_check" CHECK (scope in ('device', 'user', 'client'))
);
--> statement-breakpoint
CREATE UNIQUE INDEX "notice_waivers_active_key" ON "notice_waivers" USING btree ("scope","target") WHERE "notice_waivers"."revoked_at" is null;