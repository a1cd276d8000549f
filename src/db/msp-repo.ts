/** The MSP's own row (there is one, id 1, written by `patchbay import`). */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';

export interface MspRow {
  name: string;
  timezone: string;
  /** The Slack channel id the bot posts in ('' until set). */
  channel: string;
  /** Window specs by device class. */
  windows: Record<string, string>;
  settings: Record<string, unknown>;
}

/** The MSP, or undefined before any inventory is imported. */
export async function loadMsp(db: AppDatabase): Promise<MspRow | undefined> {
  const [row] = rowsOf<MspRow>(await db.execute(sql`select name, timezone, channel, windows, settings from msp where id = 1`));
  return row;
}

/** Whether an inventory was ever imported (a fresh database has no MSP row). */
export async function hasMsp(db: AppDatabase): Promise<boolean> {
  const [row] = rowsOf<{ n: number }>(await db.execute(sql`select count(*)::int as n from msp`));
  return Number(row?.n ?? 0) > 0;
}

/** The MSP's time zone, UTC before any inventory is imported: times in engineers' messages are written in it. */
export async function mspTimezone(db: AppDatabase): Promise<string> {
  return (await loadMsp(db))?.timezone ?? 'UTC';
}
