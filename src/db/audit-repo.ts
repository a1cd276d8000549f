/** Appending to the audit log (append-only: migration 0001 refuses UPDATE and DELETE) outside a larger transaction. */
import { auditLog, type SOURCES } from './schema.ts';
import type { AppDatabase } from './client.ts';

export interface AuditEntry {
  at: Date;
  actor: string;
  action: string;
  subject: string;
  detail: Record<string, unknown>;
  source: (typeof SOURCES)[number];
}

export async function appendAudit(db: AppDatabase, entry: AuditEntry): Promise<void> {
  await db.insert(auditLog).values(entry);
}
