// The digest's notices as data: a decision's digest_changed notice redraws each posted digest message that shows
// what was decided, whole, from the model (never from the stored Block Kit), and a confirmed pilot's notice renders
// the thread note with its stored key and subject.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import { parseCvrf } from '../../src/adapters/msrc/to-release.ts';
import type { SlackMessage } from '../../src/chat/slack/block-kit.ts';
import { renderDigestBlocks } from '../../src/chat/slack/digest-blocks.ts';
import type { Audiences } from '../../src/chat/audiences.ts';
import { renderNotice } from '../../src/chat/notices.ts';
import type { DigestChanged, PilotConfirmed } from '../../src/chat/notices/digest.ts';
import type { UpdateStanding } from '../../src/domain/approval.ts';
import { buildDigest } from '../../src/domain/digest.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const release = parseCvrf(readFileSync(path.join(repoRoot, 'test/fixtures/msrc/edge-cases.json'), 'utf8'));
const digest = buildDigest({ release, now: DateTime.fromISO('2024-02-13T18:00:00Z') });
const messages = renderDigestBlocks(digest, { interactive: true });
const month = digest.month;
const subjectOf = (n: number) => (n === 0 ? `digest:${month}` : `digest:${month}:thread:${n}`);
const posted = messages.map((_, n) => ({ outboxId: 100 + n, channel: 'C0POSTED', subject: subjectOf(n) }));

const audiences: Audiences = {
  engineers: { channel: 'C0ENGINEERS' },
  mspZone: 'America/Chicago',
  clientName: (id) => (id === 'acme' ? 'Acme <Dental>' : id),
  personName: (id) => id,
};

// The oracle reads the buttons' values, as Slack hands them back on a click: independent of how the renderer is asked.
const buttonValues = (m: SlackMessage) =>
  m.blocks.flatMap((b) => (b.type === 'actions' ? b.elements.map((e) => ({ action: e.action_id, value: JSON.parse(e.value ?? '{}') as { kb?: string } })) : []));
const showsUpdate = (m: SlackMessage, kb: string) => buttonValues(m).some((v) => v.action === 'update.approve' && v.value.kb === kb);
const hasButtons = (m: SlackMessage) => buttonValues(m).some((v) => v.action === 'update.approve' || v.action === 'release.approve');

const nobody: UpdateStanding = { approval: null, viaRelease: false, holds: [] };
const line = digest.fleet.groups[0]!.lines[0]!;
const key = line.id;
const at = '2024-02-13T20:00:00.000Z';

function changed(over: Partial<DigestChanged>): DigestChanged {
  const updates = Object.fromEntries(digest.fleet.groups.flatMap((g) => g.lines).map((l) => [l.id, { standing: nobody, notes: [] }]));
  return { kind: 'digest_changed', releaseId: month, cause: `approve:${month}:${key}:0`, changed: [key], digest, posted, release: nobody, updates, at, ...over };
}

describe('digest_changed', () => {
  it('edits only the posted message showing the decided update, drawn whole from the model with its standing', () => {
    const approved = { ...changed({}).updates, [key]: { standing: { approval: { by: 'U0PAT', at }, viaRelease: false, holds: [] }, notes: [] } };
    const rows = renderNotice(changed({ updates: approved }), audiences);
    const n = messages.findIndex((m) => showsUpdate(m, line.kb ?? line.id));
    expect(n).toBeGreaterThan(0);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ key: `refresh:approve:${month}:${key}:0:${100 + n}`, platform: 'slack', channel: 'C0POSTED', action: 'update', subject: subjectOf(n) });
    const edited = JSON.stringify(rows[0]!.payload.blocks);
    expect(edited).toMatch(/\*Approved\* by <@U0PAT> at 14:00 CST/);
    expect(edited.match(/Approved\*/g)).toHaveLength(1);
    // Apart from the status line, the edit is the message as the renderer draws it.
    expect(edited.replace(/\\n:white_check_mark: \*Approved\*[^"]*/, '')).toBe(JSON.stringify(messages[n]!.blocks));
    expect(rows[0]!.payload.text).toBe(messages[n]!.text);
  });

  it('for the release as a whole, edits every posted message with buttons, the release status under its own', () => {
    const hold = { id: '7', updateKey: null, clientId: null, ring: null, reason: 'Wait for the known issue', by: 'U0SAM', at };
    const rows = renderNotice(changed({ changed: [null], release: { approval: null, viaRelease: false, holds: [hold] } }), audiences);
    expect(rows.map((r) => r.subject)).toEqual(posted.filter((_, n) => hasButtons(messages[n]!)).map((p) => p.subject));
    const withRelease = rows.filter((r) => JSON.stringify(r.payload.blocks).includes('release.approve'));
    expect(withRelease).toHaveLength(1);
    expect(JSON.stringify(withRelease[0]!.payload.blocks)).toContain('*Held* (whole release, all clients) by <@U0SAM> at 14:00 CST: Wait for the known issue');
  });

  it('shows notes written since the digest was posted under their update, escaped', () => {
    const noted = { ...changed({}).updates, [key]: { standing: nobody, notes: [{ author: 'U0SAM', text: 'breaks *printing*', tags: ['conflict'] }] } };
    const [row] = renderNotice(changed({ updates: noted }), audiences);
    const text = JSON.stringify(row!.payload.blocks);
    expect(text).toContain('> <@U0SAM> [conflict]: breaks ');
    expect(text).not.toContain('breaks *printing*');
  });

  it('edits no message it was not told was posted, nor one the digest no longer draws', () => {
    const n = messages.findIndex((m) => showsUpdate(m, line.kb ?? line.id));
    const elsewhere = posted.filter((_, i) => i !== n);
    expect(renderNotice(changed({ posted: elsewhere }), audiences)).toEqual([]);
    const gone = [{ outboxId: 1, channel: 'C0POSTED', subject: `digest:${month}:thread:${messages.length}` }];
    expect(renderNotice(changed({ changed: [null], posted: gone }), audiences)).toEqual([]);
  });
});

describe('pilot_confirmed', () => {
  const notice: PilotConfirmed = {
    kind: 'pilot_confirmed',
    releaseId: '2024-Feb',
    clientId: 'acme',
    clientName: 'Acme <Dental>',
    as: 'auto',
    updates: [
      { key: '5034763', label: 'KB5034763' },
      { key: '5034765', label: 'KB5034765 *Office*' },
    ],
    nights: [{ deviceClass: 'desktop', count: 3, users: true, night: 'Thu 15 Feb, 01:00–05:00 CST' }],
    autoConfirmHours: 48,
  };

  it('posts one note in the release thread, keyed by the updates it covered', () => {
    const batch = createHash('sha1').update('5034763 5034765').digest('hex').slice(0, 12);
    expect(renderNotice(notice, audiences)).toEqual([
      {
        key: `pilot-confirmed:2024-Feb:acme:${batch}`,
        platform: 'slack',
        channel: 'C0ENGINEERS',
        action: 'post',
        subject: 'pilot-confirmed:2024-Feb:acme',
        payload: {
          threadSubject: 'digest:2024-Feb',
          text: expect.stringMatching(/^:white_check_mark: Acme &lt;Dental&gt;'s pilot of 2024-Feb \(KB5034763, KB5034765 .+Office.+\) was auto-confirmed after 48 h without an answer from its champions; the rest of its machines start:\n• desktop \(3\): Thu 15 Feb, 01:00–05:00 CST, once their users have had the “save your work” message$/),
        },
      },
    ]);
    expect(renderNotice({ ...notice, updates: [] }, audiences)[0]!.key).toBe('pilot-confirmed:2024-Feb:acme');
  });

  it('names the champion who confirmed, and posts nothing before the engineers have a channel', () => {
    const [row] = renderNotice({ ...notice, as: 'champion', by: 'Ana Silva', updates: [], nights: [] }, audiences);
    expect(row!.payload.text).toMatch(/champion Ana Silva confirmed the pilot of 2024-Feb; the rest of its machines are scheduled\.$/);
    expect(renderNotice(notice, { ...audiences, engineers: undefined })).toEqual([]);
  });

  it('says so when none of the client\u2019s other machines runs what was confirmed, instead of promising they start', () => {
    const [row] = renderNotice({ ...notice, as: 'champion', by: 'Ana Silva', nights: [] }, audiences);
    expect(row!.payload.text).toMatch(/confirmed the pilot of 2024-Feb \(KB5034763, .+\); none of its other machines runs them, so nothing more installs for this confirmation\.$/);
    expect(row!.payload.text).not.toContain('start');
  });

  it('names an engineer known only by a Slack id with a mention (Slack shows the name), never the bare id', () => {
    const [row] = renderNotice({ ...notice, as: 'engineer', by: 'U0ENG2', nights: [] }, audiences);
    expect(row!.payload.text).toMatch(/^:white_check_mark: <@U0ENG2> confirmed Acme &lt;Dental&gt;'s pilot of 2024-Feb/);
    const [named] = renderNotice({ ...notice, as: 'engineer', by: 'Robin Tech', nights: [] }, audiences);
    expect(named!.payload.text).toMatch(/^:white_check_mark: Robin Tech confirmed/);
  });
});
