CREATE TABLE "deployer_operations" (
	"key" text PRIMARY KEY NOT NULL,
	"backend" text NOT NULL,
	"kind" text NOT NULL,
	"device" text NOT NULL,
	"target" text NOT NULL,
	"updates" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"phase" text NOT NULL,
	"facts" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"result" jsonb,
	"sent_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "deployer_operations_device_idx" ON "deployer_operations" USING btree ("backend","device");