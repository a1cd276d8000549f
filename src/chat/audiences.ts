/**
 * Who a notice goes to and the names people read there, loaded once per `notify` call so every renderer is pure:
 * a renderer gets a notice and these, and returns outbox rows. A family that needs another audience (a client's
 * champions, a user's DM) adds a field here, loaded through a repository.
 */
import type { AppDatabase } from '../db/client.ts';
import { loadMsp } from '../db/msp-repo.ts';
import { chatDisplayNames, clientNames } from '../db/names-repo.ts';

export interface Audiences {
  /** The engineers' Slack channel; undefined before one is configured (nothing is posted then). */
  engineers: { channel: string } | undefined;
  /** The MSP's time zone, for times written in engineers' messages. */
  mspZone: string;
  /** A client's name for its id (the id itself when unknown): people never read `acme-dental`. */
  clientName(clientId: string): string;
  /** A person's display name for a chat id (the id itself when unknown). */
  personName(chatId: string): string;
}

export async function loadAudiences(db: AppDatabase): Promise<Audiences> {
  const [msp, clients, people] = [await loadMsp(db), await clientNames(db), await chatDisplayNames(db)];
  return {
    engineers: msp?.channel ? { channel: msp.channel } : undefined,
    mspZone: msp?.timezone ?? 'UTC',
    clientName: (clientId) => clients.get(clientId) ?? clientId,
    personName: (chatId) => people.get(chatId) ?? chatId,
  };
}
