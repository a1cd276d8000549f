/**
 * The storage for the whole product, designed up front so later features add columns and tables rather than
 * reshape these. PostgreSQL is the source of truth (Redis only carries work in flight), so everything a crash
 * must not lose — decisions, runs and their steps, chat messages still to send — lives here.
 *
 * Conventions: every instant is `timestamp with time zone`; rows that people or history point at are retired
 * (`retired_at`) rather than deleted; each exactly-once guarantee is a UNIQUE constraint, so a retry or a
 * double click collides in the database instead of relying on timing.
 */
import { sql } from 'drizzle-orm';
import { REPORT_KINDS } from '../domain/report-schedule.ts';
import {
  bigint,
  boolean,
  check,
  customType,
  date,
  foreignKey,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  real,
  text,
  smallint,
  timestamp,
  unique,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

const instant = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });
const createdAt = () => instant('created_at').notNull().defaultNow();
const updatedAt = () => instant('updated_at').notNull().defaultNow();

export const RINGS = ['msp', 'pilot', 'broad'] as const;
export const DECISION_KINDS = [
  'approve',
  'hold',
  'release_hold',
  'withdraw',
  'promote',
  'confirm_pilot',
  'report_problem',
  'defer',
  'acknowledge',
  'retry_failed',
] as const;
export const SOURCES = ['slack', 'teams', 'cli', 'system'] as const;
export const HOLD_SCOPES = ['update', 'client', 'ring', 'all'] as const;
export const CHAT_PLATFORMS = ['slack', 'teams'] as const;
export const WAIVER_SCOPES = ['device', 'user', 'client'] as const;
export const RUN_STATES = ['scheduled', 'running', 'succeeded', 'failed', 'offline', 'rolled', 'skipped', 'cancelled'] as const;
export const OUTBOX_STATES = ['pending', 'sending', 'sent', 'failed', 'dead'] as const;

const inList = (column: string, values: readonly string[]) =>
  sql.raw(`${column} in (${values.map((v) => `'${v}'`).join(', ')})`);

/** Window spec per device class, in canonical spelling (see src/domain/window-spec.ts). */
export type WindowsByClass = Record<string, string>;

/** Per-MSP knobs; defaults live in code so a missing key means "the default". */
export interface MspSettings {
  soakHours?: number;
  missedWindowLimit?: number;
  runConcurrency?: number;
  directorySyncedAt?: string;
  /** The device manager sync's bookkeeping (src/db/tactical-sync-repo.ts). */
  tacticalSync?: TacticalSyncState;
}

export interface TacticalSyncState {
  /** The last sync that read Tactical RMM, ISO. */
  syncedAt?: string;
  /** An engineer's `/patch sync` not yet run, ISO. */
  requestedAt?: string;
  /** Set when a sync failed and the engineers were told; cleared by the next sync that works. */
  failingSince?: string;
  /** What the last message listed as still wrong (unmapped OSes, problems), so an unchanged list is not re-posted. */
  reportedIssues?: string;
}

/** Per-client knobs (auto-confirm, DM time and wording, deferral limit, which chat its people use). */
export interface ClientSettings {
  autoConfirmHours?: number;
  dmTime?: string;
  dmTemplate?: string;
  maxDeferralsPerRelease?: number;
  noticeHours?: number;
  chatPlatform?: 'slack' | 'teams';
  slackChannel?: string;
  runConcurrency?: number;
}

/** The single MSP this installation serves; one row, id 1. */
export const msp = pgTable(
  'msp',
  {
    id: integer('id').primaryKey().default(1),
    name: text('name').notNull(),
    timezone: text('timezone').notNull(),
    /** The engineers' Slack channel id. */
    channel: text('channel').notNull(),
    windows: jsonb('windows').$type<WindowsByClass>().notNull(),
    settings: jsonb('settings').$type<MspSettings>().notNull().default({}),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [check('msp_single_row', sql`${t.id} = 1`)],
);

export const clients = pgTable('clients', {
  /** The id the inventory gives the client (e.g. `acme-dental`); stable across imports. */
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  timezone: text('timezone').notNull(),
  windows: jsonb('windows').$type<WindowsByClass>().notNull(),
  software: jsonb('software').$type<string[]>().notNull().default([]),
  settings: jsonb('settings').$type<ClientSettings>().notNull().default({}),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
  retiredAt: instant('retired_at'),
});

export const locations = pgTable(
  'locations',
  {
    clientId: text('client_id')
      .notNull()
      .references(() => clients.id),
    /** The inventory's location id, unique within its client. */
    id: text('id').notNull(),
    name: text('name'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    retiredAt: instant('retired_at'),
  },
  (t) => [primaryKey({ columns: [t.clientId, t.id] })],
);

export const devices = pgTable(
  'devices',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    /** Unique across the MSP: device management tools address machines by name. */
    name: text('name').notNull(),
    /** Null for the MSP's own (ring `msp`) machines. */
    clientId: text('client_id').references(() => clients.id),
    locationId: text('location_id'),
    class: text('class').notNull(),
    ring: text('ring', { enum: RINGS }).notNull(),
    os: text('os'),
    userEmail: text('user_email'),
    /** IANA zone of the machine itself (a device manager's agent says it); null: its client's (or the MSP's) zone. */
    timezone: text('timezone'),
    /** Where the machine's existence comes from: null for the inventory file, `tactical` for a Tactical RMM sync. */
    syncedFrom: text('synced_from'),
    /** Windows in a row the device was offline or unfinished; reset by a finished run. */
    consecutiveMissedWindows: integer('consecutive_missed_windows').notNull().default(0),
    flaggedAt: instant('flagged_at'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    retiredAt: instant('retired_at'),
  },
  (t) => [
    unique('devices_name_key').on(t.name),
    index('devices_client_idx').on(t.clientId, t.ring),
    index('devices_user_email_idx').on(t.userEmail),
    foreignKey({ columns: [t.clientId, t.locationId], foreignColumns: [locations.clientId, locations.id] }).onDelete('restrict'),
    check('devices_ring_check', inList('ring', RINGS)),
    // The MSP's machines are ring `msp` and belong to no client; a client's machines are never ring `msp`.
    check('devices_ring_owner_check', sql`(${t.ring} = 'msp') = (${t.clientId} is null)`),
  ],
);

export const people = pgTable(
  'people',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    /**
     * Stable identity across imports: the lower-cased email when known, else `slack:<user id>` or
     * `teams:<aad object id>`.
     */
    key: text('key').notNull(),
    email: text('email'),
    displayName: text('display_name'),
    /** IANA zone when the directory knows it; else the client's zone applies. */
    timezone: text('timezone'),
    /** `inventory` rows are retired when they leave the file; `chat` rows came from a chat and are not. */
    source: text('source', { enum: ['inventory', 'chat'] }).notNull().default('inventory'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    retiredAt: instant('retired_at'),
  },
  (t) => [unique('people_key_key').on(t.key), index('people_email_idx').on(t.email)],
);

export const personRoles = pgTable(
  'person_roles',
  {
    personId: integer('person_id')
      .notNull()
      .references(() => people.id),
    role: text('role', { enum: ['engineer', 'champion', 'user'] }).notNull(),
    /** The client a champion or user belongs to; null for engineers. */
    clientId: text('client_id').references(() => clients.id),
    createdAt: createdAt(),
  },
  (t) => [
    unique('person_roles_key').on(t.personId, t.role, t.clientId).nullsNotDistinct(),
    index('person_roles_client_idx').on(t.clientId, t.role),
    check('person_roles_role_check', inList('role', ['engineer', 'champion', 'user'])),
  ],
);

/** How a person is reached or recognised in a chat: a Slack user id, a Teams AAD object id / UPN. */
export const chatIdentities = pgTable(
  'chat_identities',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    personId: integer('person_id')
      .notNull()
      .references(() => people.id),
    platform: text('platform', { enum: CHAT_PLATFORMS }).notNull(),
    /** Slack user id (U…) or Teams AAD object id. */
    externalId: text('external_id').notNull(),
    /**
     * Teams only: the person's MRI (`29:…`, `from.id` on what Teams sends), learnt when they are seen. Teams names
     * people by it where an AAD id is not accepted, such as an Adaptive Card's refresh.userIds.
     */
    mri: text('mri'),
    upn: text('upn'),
    tenantId: text('tenant_id'),
    email: text('email'),
    /** Where we learned it: the inventory, the chat directory (users.list), or a link code. */
    source: text('source', { enum: ['inventory', 'directory', 'link', 'install'] }).notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [unique('chat_identities_platform_external_key').on(t.platform, t.externalId), index('chat_identities_person_idx').on(t.personId)],
);

/** Bot Framework conversation references, needed for every proactive Teams message. */
export const teamsConversations = pgTable(
  'teams_conversations',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    conversationId: text('conversation_id').notNull(),
    tenantId: text('tenant_id'),
    kind: text('kind', { enum: ['channel', 'groupChat', 'personal'] }).notNull(),
    clientId: text('client_id').references(() => clients.id),
    /** Set for personal chats: whose chat this is. */
    personId: integer('person_id').references(() => people.id),
    reference: jsonb('reference').$type<Record<string, unknown>>().notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    removedAt: instant('removed_at'),
  },
  (t) => [
    unique('teams_conversations_conversation_key').on(t.conversationId),
    index('teams_conversations_client_idx').on(t.clientId),
    // A night's DM planning finds 25,000 people's personal chats; "who can't we reach" asks it of every device user.
    index('teams_conversations_personal_idx').on(t.personId).where(sql`${t.kind} = 'personal' and ${t.removedAt} is null`),
  ],
);

/** One-time codes an engineer hands a champion to link a Teams conversation to a client by hand. */
export const linkCodes = pgTable('link_codes', {
  code: text('code').primaryKey(),
  clientId: text('client_id')
    .notNull()
    .references(() => clients.id),
  createdBy: text('created_by').notNull(),
  createdAt: createdAt(),
  expiresAt: instant('expires_at').notNull(),
  usedAt: instant('used_at'),
  usedByConversationId: text('used_by_conversation_id'),
});

/** One month's Microsoft security release, updated in place as Microsoft revises it. */
export const releases = pgTable('releases', {
  /** The CVRF id, e.g. `2024-Feb`. */
  id: text('id').primaryKey(),
  title: text('title'),
  initialReleaseDate: instant('initial_release_date').notNull(),
  currentReleaseDate: instant('current_release_date').notNull(),
  revision: text('revision').notNull(),
  /** Hash of the document as fetched, so an unchanged re-read is recognised without diffing. */
  documentHash: text('document_hash').notNull(),
  /** The digest's model of the release, as JSON (counts, separate lists), for rendering without recomputing. */
  summary: jsonb('summary').$type<Record<string, unknown>>().notNull().default({}),
  /** The full Release model as last stored, so a re-read is diffed with diffReleases without rebuilding from rows. */
  model: jsonb('model').$type<Record<string, unknown>>().notNull(),
  /** When the document was last read, changed or not (the watcher's "last checked"). */
  fetchedAt: instant('fetched_at').notNull(),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

/** What a revision of a release changed ("CVE-2024-21410 is now marked exploited"), posted as a thread reply. */
export const releaseChanges = pgTable(
  'release_changes',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    releaseId: text('release_id')
      .notNull()
      .references(() => releases.id),
    revision: text('revision').notNull(),
    documentHash: text('document_hash').notNull(),
    changes: jsonb('changes').$type<unknown[]>().notNull(),
    detectedAt: instant('detected_at').notNull(),
    postedAt: instant('posted_at'),
  },
  (t) => [unique('release_changes_release_hash_key').on(t.releaseId, t.documentHash)],
);

export const updates = pgTable(
  'updates',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    releaseId: text('release_id')
      .notNull()
      .references(() => releases.id),
    /** The model's Update.id: the KB number, or a slug for fixes without one ("Release Notes", a package). */
    updateKey: text('update_key').notNull(),
    /** Null for fixes MSRC ships without a KB number. */
    kb: text('kb'),
    title: text('title'),
    family: text('family'),
    /** Product names as MSRC writes them (matched against the inventory's device OS names). */
    products: jsonb('products').$type<string[]>().notNull().default([]),
    productIds: jsonb('product_ids').$type<string[]>().notNull().default([]),
    subtype: text('subtype'),
    /** `Yes` | `No` | `Maybe`; null when MSRC did not say (unknown is never "No"). */
    restartRequired: text('restart_required'),
    supersedes: jsonb('supersedes').$type<string[]>().notNull().default([]),
    fixedBuild: text('fixed_build'),
    url: text('url'),
    knownIssueLinks: jsonb('known_issue_links').$type<string[]>().notNull().default([]),
    /** Set when a revision dropped it: decisions and notes still point at the row. */
    removedAt: instant('removed_at'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [unique('updates_release_update_key').on(t.releaseId, t.updateKey), index('updates_release_kb_idx').on(t.releaseId, t.kb)],
);

export const cves = pgTable(
  'cves',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    releaseId: text('release_id')
      .notNull()
      .references(() => releases.id),
    cve: text('cve').notNull(),
    title: text('title'),
    /** Worst across products: Critical | Important | Moderate | Low; null when unknown. */
    severity: text('severity'),
    impacts: jsonb('impacts').$type<string[]>().notNull().default([]),
    cvssBase: real('cvss_base'),
    /** Null = MSRC did not say (third-party entries), never read as false. */
    exploited: boolean('exploited'),
    publiclyDisclosed: boolean('publicly_disclosed'),
    exploitability: text('exploitability'),
    assigningCna: text('assigning_cna'),
    /** microsoft | edgeChromium | azureLinux | otherVendor: what the headline counts and what is listed apart. */
    category: text('category').notNull().default('microsoft'),
    firstPublished: instant('first_published'),
    /** Anything else from the document the digest may want, kept so re-ingest needs no schema change. */
    detail: jsonb('detail').$type<Record<string, unknown>>().notNull().default({}),
    /** Set when a revision dropped it. */
    removedAt: instant('removed_at'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [unique('cves_release_cve_key').on(t.releaseId, t.cve), index('cves_cve_idx').on(t.cve)],
);

export const updateCves = pgTable(
  'update_cves',
  {
    updateId: integer('update_id')
      .notNull()
      .references(() => updates.id, { onDelete: 'cascade' }),
    cveId: integer('cve_id')
      .notNull()
      .references(() => cves.id, { onDelete: 'cascade' }),
  },
  (t) => [primaryKey({ columns: [t.updateId, t.cveId] }), index('update_cves_cve_idx').on(t.cveId)],
);

/** CISA's Known Exploited Vulnerabilities catalog, keyed by CVE. */
export const kevEntries = pgTable('kev_entries', {
  cve: text('cve').primaryKey(),
  vendor: text('vendor'),
  product: text('product'),
  name: text('name'),
  dateAdded: date('date_added', { mode: 'string' }).notNull(),
  dueDate: date('due_date', { mode: 'string' }),
  knownRansomware: text('known_ransomware'),
  notes: text('notes'),
  catalogVersion: text('catalog_version'),
  /** The catalog's own `dateReleased`, as CISA writes it. */
  catalogReleased: text('catalog_released'),
  /** Set when the entry left the catalog (CISA does withdraw entries); cleared if it comes back. */
  removedAt: instant('removed_at'),
  updatedAt: updatedAt(),
});

export const researchNotes = pgTable(
  'research_notes',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    updateId: integer('update_id')
      .notNull()
      .references(() => updates.id),
    /** Stored as typed; escaping happens when rendered. */
    body: text('body').notNull(),
    tags: jsonb('tags').$type<string[]>().notNull().default([]),
    author: text('author').notNull(),
    authorPersonId: integer('author_person_id').references(() => people.id),
    source: text('source', { enum: SOURCES }).notNull(),
    revision: integer('revision').notNull().default(1),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    deletedAt: instant('deleted_at'),
  },
  (t) => [index('research_notes_update_idx').on(t.updateId)],
);

/** Every version a note has had, so edits keep history. */
export const noteRevisions = pgTable(
  'note_revisions',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    noteId: integer('note_id')
      .notNull()
      .references(() => researchNotes.id),
    revision: integer('revision').notNull(),
    body: text('body').notNull(),
    tags: jsonb('tags').$type<string[]>().notNull(),
    editedBy: text('edited_by').notNull(),
    editedAt: instant('edited_at').notNull(),
  },
  (t) => [unique('note_revisions_note_revision_key').on(t.noteId, t.revision)],
);

/** A hold stops anything not yet started within its scope until released. */
export const holds = pgTable(
  'holds',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    scope: text('scope', { enum: HOLD_SCOPES }).notNull(),
    /** Null: the hold applies whatever the release (e.g. a client held until further notice). */
    releaseId: text('release_id').references(() => releases.id),
    updateId: integer('update_id').references(() => updates.id),
    clientId: text('client_id').references(() => clients.id),
    ring: text('ring', { enum: RINGS }),
    reason: text('reason').notNull(),
    placedBy: text('placed_by').notNull(),
    placedVia: text('placed_via', { enum: SOURCES }).notNull(),
    placedAt: instant('placed_at').notNull(),
    releasedAt: instant('released_at'),
    releasedBy: text('released_by'),
  },
  (t) => [
    check('holds_scope_check', inList('scope', HOLD_SCOPES)),
    check(
      'holds_scope_target_check',
      sql`(${t.scope} <> 'update' or ${t.updateId} is not null) and (${t.scope} <> 'client' or ${t.clientId} is not null) and (${t.scope} <> 'ring' or ${t.ring} is not null)`,
    ),
    index('holds_active_idx').on(t.scope).where(sql`${t.releasedAt} is null`),
  ],
);

/** Who decided what, from where, and why. The idempotency key makes a double click one decision. */
export const decisions = pgTable(
  'decisions',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    kind: text('kind', { enum: DECISION_KINDS }).notNull(),
    releaseId: text('release_id').references(() => releases.id),
    /** Null: the decision covers the whole release. */
    updateId: integer('update_id').references(() => updates.id),
    clientId: text('client_id').references(() => clients.id),
    ring: text('ring', { enum: RINGS }),
    /** For a user's deferral: the device it moves. */
    deviceId: integer('device_id').references(() => devices.id),
    holdId: integer('hold_id').references(() => holds.id),
    /** The platform's id of who acted (Slack user id, Teams AAD id, or the CLI user). */
    actor: text('actor').notNull(),
    actorPersonId: integer('actor_person_id').references(() => people.id),
    source: text('source', { enum: SOURCES }).notNull(),
    reason: text('reason'),
    detail: jsonb('detail').$type<Record<string, unknown>>().notNull().default({}),
    idempotencyKey: text('idempotency_key').notNull(),
    createdAt: instant('created_at').notNull(),
  },
  (t) => [
    unique('decisions_idempotency_key').on(t.idempotencyKey),
    index('decisions_release_idx').on(t.releaseId, t.createdAt),
    check('decisions_kind_check', inList('kind', DECISION_KINDS)),
    check('decisions_source_check', inList('source', SOURCES)),
  ],
);

/** Where one release stands for one ring of one client (client null for ring `msp`). */
export const rollouts = pgTable(
  'rollouts',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    releaseId: text('release_id')
      .notNull()
      .references(() => releases.id),
    ring: text('ring', { enum: RINGS }).notNull(),
    clientId: text('client_id').references(() => clients.id),
    state: text('state').notNull(),
    /** The domain state machine's full state, so it can be resumed exactly. */
    stateDetail: jsonb('state_detail').$type<Record<string, unknown>>().notNull().default({}),
    /** Bumped on every transition: writers compare-and-set on it, so two events never both apply. */
    version: integer('version').notNull().default(0),
    startedAt: instant('started_at'),
    finishedAt: instant('finished_at'),
    promotedAt: instant('promoted_at'),
    confirmedAt: instant('confirmed_at'),
    confirmedBy: text('confirmed_by'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [unique('rollouts_release_ring_client_key').on(t.releaseId, t.ring, t.clientId).nullsNotDistinct()],
);

/** One device in one window. UNIQUE (device, window_start) is what makes a run happen exactly once. */
export const runs = pgTable(
  'runs',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    deviceId: integer('device_id')
      .notNull()
      .references(() => devices.id),
    releaseId: text('release_id').references(() => releases.id),
    rolloutId: integer('rollout_id').references(() => rollouts.id),
    windowStart: instant('window_start').notNull(),
    windowEnd: instant('window_end').notNull(),
    state: text('state', { enum: RUN_STATES }).notNull().default('scheduled'),
    /** The step a retried job resumes at: online-check | install | reboot | verify | record. */
    step: text('step').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    reboots: integer('reboots').notNull().default(0),
    /** KBs this run is to install, fixed when it is planned. */
    updates: jsonb('updates').$type<string[]>().notNull().default([]),
    result: text('result'),
    error: text('error'),
    detail: jsonb('detail').$type<Record<string, unknown>>().notNull().default({}),
    /** The window a missed run rolled to. */
    rolledTo: instant('rolled_to'),
    scheduledAt: instant('scheduled_at').notNull(),
    startedAt: instant('started_at'),
    stepStartedAt: instant('step_started_at'),
    finishedAt: instant('finished_at'),
    updatedAt: updatedAt(),
  },
  (t) => [
    unique('runs_device_window_key').on(t.deviceId, t.windowStart),
    index('runs_window_idx').on(t.windowStart, t.state),
    index('runs_rollout_idx').on(t.rolloutId),
    check('runs_window_order_check', sql`${t.windowEnd} > ${t.windowStart}`),
  ],
);

/**
 * What the runs' outcomes were read from changes only when a stamp here changes: triggers (migration 0012) bump
 * `runs:<release id>` in the same transaction as any write to a run that is or was succeeded or failed, and
 * `devices:os` when a device's OS changes, so a reader that saw the same stamps knows the outcomes it read then
 * still hold (src/db/outcome-cache.ts). A few shards per scope (by backend), so the run workers saving runs side by
 * side rarely wait on one row. `epoch` is new for every row created: a stamp emptied and rebuilt never repeats.
 */
export const outcomeStamps = pgTable(
  'outcome_stamps',
  {
    scope: text('scope').notNull(),
    shard: smallint('shard').notNull(),
    epoch: uuid('epoch').notNull().defaultRandom(),
    version: bigint('version', { mode: 'number' }).notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.scope, t.shard] })],
);

/** Messages the bot has posted, so later events edit them in place instead of posting again. */
export const chatMessages = pgTable(
  'chat_messages',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    platform: text('platform', { enum: CHAT_PLATFORMS }).notNull(),
    /** Slack channel/DM id or Teams conversation id. */
    channel: text('channel').notNull(),
    /** Slack `ts` or Teams activity id. */
    messageId: text('message_id').notNull(),
    threadId: text('thread_id'),
    /** What the message is about, e.g. `digest:2024-Feb` or `window:acme-dental:2024-02-14T07:00Z`. */
    subject: text('subject').notNull(),
    payloadHash: text('payload_hash'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    unique('chat_messages_platform_channel_message_key').on(t.platform, t.channel, t.messageId),
    unique('chat_messages_platform_channel_subject_key').on(t.platform, t.channel, t.subject),
  ],
);

/** Messages to send, written in the same transaction as the change they report; a job delivers them. */
export const chatOutbox = pgTable(
  'chat_outbox',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    idempotencyKey: text('idempotency_key').notNull(),
    platform: text('platform', { enum: CHAT_PLATFORMS }).notNull(),
    channel: text('channel').notNull(),
    /** post | update | ephemeral | dm | card-refresh */
    action: text('action').notNull().default('post'),
    /** For updates: the message to edit (known once the original post was sent). */
    chatMessageId: integer('chat_message_id').references(() => chatMessages.id),
    subject: text('subject'),
    payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
    state: text('state', { enum: OUTBOX_STATES }).notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: instant('next_attempt_at').notNull().defaultNow(),
    lastError: text('last_error'),
    sentAt: instant('sent_at'),
    /** What the platform answered with (Slack ts, Teams activity id), for later edits. */
    sentMessageId: text('sent_message_id'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    unique('chat_outbox_idempotency_key').on(t.idempotencyKey),
    index('chat_outbox_due_idx').on(t.nextAttemptAt).where(sql`${t.state} in ('pending', 'failed')`),
    /** Rows dropped because they were of use only until a time that passed (a user's DM held up past its deadline): few. */
    index('chat_outbox_dropped_late_idx').on(t.updatedAt).where(sql`${t.state} = 'dead' and (${t.payload} ->> 'notAfter') is not null`),
    check('chat_outbox_state_check', inList('state', OUTBOX_STATES)),
  ],
);

/** Keys of requests already handled (Slack event ids, Teams activity ids), with what was answered. */
export const idempotencyKeys = pgTable('idempotency_keys', {
  key: text('key').primaryKey(),
  scope: text('scope').notNull(),
  result: jsonb('result').$type<unknown>(),
  createdAt: createdAt(),
  expiresAt: instant('expires_at'),
});

/**
 * Append-only: a trigger (migration 0001) refuses UPDATE, DELETE and TRUNCATE. Hash-chained: the insert trigger of
 * migration audit_hash_chain_trigger sets `id`, `prev_hash` and `row_hash` (src/domain/audit-chain.ts says how), so
 * a writer leaves them out; the defaults only make them optional to drizzle and are always overwritten.
 */
export const auditLog = pgTable(
  'audit_log',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    at: instant('at').notNull().defaultNow(),
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    subject: text('subject').notNull(),
    detail: jsonb('detail').$type<Record<string, unknown>>().notNull().default({}),
    source: text('source', { enum: SOURCES }).notNull(),
    prevHash: text('prev_hash').notNull().default(''),
    rowHash: text('row_hash').notNull().default(''),
  },
  (t) => [index('audit_log_subject_idx').on(t.subject, t.at), index('audit_log_at_idx').on(t.at)],
);

/**
 * The audit chain's head: one row, the hash and id of the last audit row. The insert trigger locks it, so appends
 * are serialised and the chain cannot fork; `patchbay audit verify` checks it against the last row (a removed tail).
 */
export const auditChainHead = pgTable('audit_chain_head', {
  one: boolean('one').primaryKey().default(true),
  lastId: bigint('last_id', { mode: 'number' }),
  rowHash: text('row_hash').notNull(),
});

/**
 * Direct messages to end users about their own devices: "save your work tonight" (one per person per window) and
 * "your computer was off last night" (one per person per release). The row is what a button press is checked
 * against (only `recipient` may answer) and what a deferral acts on (the devices and windows the DM named), so
 * the answer never depends on re-planning. `key` is the exactly-once guarantee; the outbox row shares it.
 */
export const userDms = pgTable(
  'user_dms',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    /** `tonight:<person>:<window start, UTC ISO>` (one per person per window) or `offline:<person>:<release>`. */
    key: text('key').notNull(),
    kind: text('kind', { enum: ['tonight', 'offline'] }).notNull(),
    personId: integer('person_id')
      .notNull()
      .references(() => people.id),
    clientId: text('client_id').references(() => clients.id),
    releaseId: text('release_id').references(() => releases.id),
    /** The local date (in the person's zone) of the afternoon the DM is sent, `yyyy-MM-dd`. */
    night: date('night', { mode: 'string' }).notNull(),
    platform: text('platform', { enum: CHAT_PLATFORMS }).notNull(),
    /** Where it was posted: a Slack user id (a DM needs no conversations.open) or a Teams conversation id. */
    channel: text('channel').notNull(),
    /** The platform id of the only person who may press its buttons. */
    recipient: text('recipient').notNull(),
    zone: text('zone').notNull(),
    devices: jsonb('devices').$type<Array<Record<string, unknown>>>().notNull(),
    /** ok | defer | escalated (over the deferral limit: the engineers decide). */
    answer: text('answer'),
    answeredAt: instant('answered_at'),
    sendAt: instant('send_at').notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    unique('user_dms_key').on(t.key),
    index('user_dms_person_release_idx').on(t.personId, t.releaseId),
  ],
);

/**
 * An engineer's explicit, audited "patch these without the save-your-work DM": for a user no chat can reach (or a
 * client with no chat at all), whose devices the notice rule would otherwise keep out of every window. One more
 * kind of notice evidence (src/domain/notice.ts); the device still waits for its window. Standing until revoked,
 * so an unreachable user is not re-waived every month; revoked rows stay as history.
 */
export const noticeWaivers = pgTable(
  'notice_waivers',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    scope: text('scope', { enum: WAIVER_SCOPES }).notNull(),
    /** A device name, a user's email (lower-cased) or a client id (`msp` for the MSP's own machines). */
    target: text('target').notNull(),
    reason: text('reason').notNull(),
    actor: text('actor').notNull(),
    source: text('source', { enum: SOURCES }).notNull(),
    createdAt: createdAt(),
    revokedAt: instant('revoked_at'),
    revokedBy: text('revoked_by'),
  },
  (t) => [
    // One standing waiver per target: a second /patch notice waive is a no-op, not a second row.
    uniqueIndex('notice_waivers_active_key').on(t.scope, t.target).where(sql`${t.revokedAt} is null`),
    check('notice_waivers_scope_check', inList('scope', WAIVER_SCOPES)),
  ],
);

/**
 * What a device manager was asked to do, by the run step's idempotency key. Tactical RMM (and most RMMs) have no
 * request idempotency, so the key -> operation mapping lives here: a worker killed mid-step finds the row and
 * polls the operation it had started instead of starting a second install or reboot. The row is written before
 * the manager is asked (`phase` says how far it got), so a kill between the two never loses the intent.
 */
export const deployerOperations = pgTable(
  'deployer_operations',
  {
    key: text('key').primaryKey(),
    /** Which back end: `tactical`, later others; one key is never shared between back ends. */
    backend: text('backend').notNull(),
    kind: text('kind', { enum: ['install', 'reboot'] }).notNull(),
    device: text('device').notNull(),
    /** The back end's own id for the device (Tactical's agent_id). */
    target: text('target').notNull(),
    /** For installs: the KBs asked for. */
    updates: jsonb('updates').$type<string[]>().notNull().default([]),
    /** `preparing` (approving rows), `sent` (the install/reboot request may have reached the manager), `done`. */
    phase: text('phase', { enum: ['preparing', 'sent', 'done'] }).notNull(),
    /** Back-end facts needed to judge the outcome later, e.g. the agent's boot_time before a reboot. */
    facts: jsonb('facts').$type<Record<string, unknown>>().notNull().default({}),
    /** Once done: the final answer, returned as is to every later ask. */
    result: jsonb('result').$type<{ state: 'succeeded' | 'failed'; rebootRequired?: boolean; error?: string; notStarted?: boolean }>(),
    sentAt: instant('sent_at'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index('deployer_operations_device_idx').on(t.backend, t.device)],
);

/** Raw bytes (PostgreSQL `bytea`): postgres.js hands back a Buffer, PGlite a Uint8Array; both come out as a Buffer. */
const bytea = customType<{ data: Buffer; driverData: Buffer | Uint8Array }>({
  dataType: () => 'bytea',
  toDriver: (value) => value,
  fromDriver: (value) => (Buffer.isBuffer(value) ? value : Buffer.from(value)),
});


/**
 * Every compliance report file patchbay sent, as sent (issue 17's retention: HIPAA keeps documentation six years):
 * the bytes, their SHA-256, whose and which period, and to whom. Append-only like the audit log (a trigger refuses
 * UPDATE, DELETE and TRUNCATE), so `patchbay report fetch` hands back exactly what a client or an auditor got.
 * `delivery_key` is the report's idempotency key (`report:<kind>:<client>:<period>[:<request>]`): the files of one
 * sending share it, and a scheduler that runs twice collides here instead of sending twice. The chat outbox row
 * names the key, not the bytes, so large files never ride in the outbox's JSON.
 */
export const reportArchive = pgTable(
  'report_archive',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    deliveryKey: text('delivery_key').notNull(),
    /** Null for the MSP-wide report (the engineers' weekly KEV exposure). */
    clientId: text('client_id'),
    periodId: text('period_id').notNull(),
    kind: text('kind', { enum: REPORT_KINDS }).notNull(),
    /** `csv`, `pdf`, `png`, `json`: what the file is, as `patchbay report --format` names it. */
    format: text('format').notNull(),
    fileName: text('file_name').notNull(),
    mimeType: text('mime_type').notNull(),
    content: bytea('content').notNull(),
    sha256: text('sha256').notNull(),
    /** Where it went: `slack:<channel>`, `teams:<conversation>`, … */
    sentTo: jsonb('sent_to').$type<string[]>().notNull(),
    sentAt: instant('sent_at').notNull(),
  },
  (t) => [
    uniqueIndex('report_archive_delivery_file_idx').on(t.deliveryKey, t.fileName),
    index('report_archive_client_period_idx').on(t.clientId, t.periodId),
  ],
);
