// `/patch report CLIENT MONTH` end to end: a signed slash command into the real Bolt app, the report judged and
// archived, the real outbox deliverer posting the summary and uploading the files through the real WebClient's
// external upload flow into the emulator; the files that arrive are the archive's bytes, of the declared length.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { parse } from 'csv-parse/sync';
import { headlineValue, readPdf } from '../support/pdf-reader.ts';
import { rowsOf, type AppDatabase } from '../../src/db/client.ts';
import { applyInventory } from '../../src/db/inventory-repo.ts';
import { filesOfDelivery } from '../../src/db/report-archive-repo.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { worldInventory, worldRelease } from '../support/rollout-world.ts';
import { startSlackStack, type SlackStack } from '../support/slack-stack.ts';
import { buildSlashCommand, postSigned } from '../support/slack-signing.ts';

const SECRET = 'report-signing-secret';
const CH = 'C0ENGINEERS';
const clock = new Date('2024-03-05T15:00:00Z');

let stack: SlackStack;
let database: SlackStack['database'];
let emu: SlackStack['emu'];
let eventsUrl: string;

/** Acme with a pilot and three broad machines, its own SLA days; February's release stored and approved. */
async function seed(db: AppDatabase): Promise<void> {
  const now = new Date('2024-02-01T12:00:00Z');
  const inventory = worldInventory({ clients: [{ id: 'acme', pilot: 1, broad: 3 }] });
  inventory.msp.engineers = ['U0PAT'];
  inventory.msp.channel = CH;
  inventory.clients[0]!.settings = { slaCriticalDays: 7, slaImportantDays: 21 };
  await applyInventory(db, inventory, now);
  await storeRelease(db, worldRelease(), { fetchedAt: now, now });
  await db.execute(sql`insert into decisions (kind, release_id, actor, source, idempotency_key, created_at)
    values ('approve', '2024-Feb', 'U0PAT', 'slack', 'test-approve', ${now.toISOString()}::timestamptz)`);
}

beforeAll(async () => {
  const files = (db: AppDatabase) => async (key: string) => (await filesOfDelivery(db, key)).map((f) => ({ name: f.fileName, mimeType: f.mimeType, bytes: f.bytes }));
  stack = await startSlackStack({ signingSecret: SECRET, now: () => clock, seed, files });
  ({ database, emu, eventsUrl } = stack);
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

async function ask(text: string): Promise<string> {
  const before = emu.responses().length;
  expect((await postSigned(eventsUrl, buildSlashCommand(emu, { user: 'U0PAT', text }).body, { secret: SECRET })).status).toBe(200);
  await expect.poll(() => emu.responses().length, { timeout: 20_000 }).toBe(before + 1);
  return String((emu.responses().at(-1)!.body as { text: string }).text);
}

describe('/patch report', () => {
  it('posts the summary and uploads the PDF and the CSV files into its thread, byte for byte as archived', { timeout: 60_000 }, async () => {
    const answer = await ask('report acme 2024-Feb');
    expect(answer).toContain('2024-Feb report for acme is on its way');
    await expect.poll(() => emu.files({ channel: CH }).length, { timeout: 20_000 }).toBe(3);

    const [summary] = emu.messages(CH).filter((m) => m.text?.startsWith('Compliance report: acme, 2024-Feb'));
    // The client's own SLA days from the inventory, said to be its policy.
    expect(summary?.text).toContain("past the client's SLA (7/21 days, the client's policy, not law)");
    const uploaded = emu.files({ channel: CH });
    expect(uploaded.every((f) => f.thread_ts === summary!.ts)).toBe(true);

    const [row] = rowsOf<{ delivery_key: string }>(await database.db.execute(sql`select distinct delivery_key from report_archive`));
    const archived = await filesOfDelivery(database.db, row!.delivery_key);
    expect(uploaded.map((f) => f.name).sort()).toEqual(archived.map((f) => f.fileName).sort());
    for (const file of archived) {
      const got = uploaded.find((f) => f.name === file.fileName)!;
      expect(got.size).toBe(file.bytes.length);
      expect(got.bytes.equals(file.bytes)).toBe(true);
    }
    const devices = parse(uploaded.find((f) => f.name.endsWith('-devices.csv'))!.bytes, { columns: true, bom: true }) as Array<Record<string, string>>;
    expect(devices.map((d) => d.client)).toEqual(Array(devices.length).fill('acme'));
    expect(devices.length).toBeGreaterThan(0);
    // The PDF a client reads: its headline says what the CSV lists, fonts embedded.
    const pdf = await readPdf(uploaded.find((f) => f.name.endsWith('.pdf'))!.bytes);
    expect(pdf.pages[0]!.text).toContain('Patch compliance');
    expect(headlineValue(pdf.pages[0]!.text, 'Devices in scope')).toBe(String(devices.length));
    expect(pdf.embeddedTrueType).toBeGreaterThan(0);
    // getUploadURLExternal was told each file's exact length.
    expect(emu.calls('files.getUploadURLExternal').map((c) => Number(c.args.length)).sort()).toEqual(archived.map((f) => f.bytes.length).sort());
  });

  it('refuses a client the inventory does not have, and sends nothing', async () => {
    const before = emu.files().length;
    expect(await ask('report nobody 2024-Feb')).toContain('No client nobody');
    expect(emu.files().length).toBe(before);
  });
});
