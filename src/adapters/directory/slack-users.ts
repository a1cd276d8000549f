/**
 * The Slack workspace's members, read in bulk with users.list (Tier 2, pages of up to 1000): 5,000 members are 5
 * calls, where one users.lookupByEmail per person (Tier 3, ~50 a minute) would take 100 minutes. The WebClient
 * given here should retry 429s itself (its default), honouring Retry-After: a sync is background work.
 */
import type { WebClient } from '@slack/web-api';

export interface SlackMember {
  id: string;
  email: string | undefined;
  tz: string | undefined;
  realName: string | undefined;
}

export async function listSlackMembers(web: WebClient, pageSize = 1000): Promise<{ members: SlackMember[]; calls: number }> {
  const members: SlackMember[] = [];
  let cursor: string | undefined;
  let calls = 0;
  do {
    const page = await web.users.list({ limit: pageSize, ...(cursor ? { cursor } : {}) });
    calls++;
    for (const m of page.members ?? []) {
      // Bots, deactivated accounts and Slackbot can never be the person behind a device.
      if (!m.id || m.deleted || m.is_bot || m.id === 'USLACKBOT') continue;
      members.push({ id: m.id, email: m.profile?.email?.toLowerCase(), tz: m.tz ?? undefined, realName: m.real_name ?? m.profile?.real_name ?? undefined });
    }
    cursor = page.response_metadata?.next_cursor || undefined;
  } while (cursor);
  return { members, calls };
}
