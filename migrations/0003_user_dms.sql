CREATE TABLE "user_dms" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "user_dms_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"key" text NOT NULL,
	"kind" text NOT NULL,
	"person_id" integer NOT NULL,
	"client_id" text,
	"release_id" text,
	"night" date NOT NULL,
	"platform" text NOT NULL,
	"channel" text NOT NULL,
	"recipient" text NOT NULL,
	"zone" text NOT NULL,
	"devices" jsonb NOT NULL,
	"answer" text,
	"answered_at" timestamp with time zone,
	"send_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "user_dms_key" UNIQUE("key")
);
--> statement-breakpoint
ALTER TABLE "user_dms" ADD CONSTRAINT "user_dms_person_id_people_id_fk" FOREIGN KEY ("person_id") REFERENCES "public"."people"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "user_dms" ADD CONSTRAINT "user_dms_client_id_clients_id_fk" FOREIGN KEY ("client_id") REFERENCES "public"."clients"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "user_dms" ADD CONSTRAINT "user_dms_release_id_releases_id_fk" FOREIGN KEY ("release_id") REFERENCES "public"."releases"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "user_dms_person_release_idx" ON "user_dms" USING btree ("person_id","release_id");