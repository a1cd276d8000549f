/**
 * Adaptive Card checks every Teams card in the tests goes through: the `adaptivecards` parser (the renderer's
 * own reading, which reports unknown elements and actions and properties past the target version), version
 * 1.5 exactly, Universal Action rules (refresh.userIds at most 60, Action.Execute has a verb), and Teams' size
 * limit on the serialised card.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AC = require('adaptivecards/dist/adaptivecards.js') as typeof import('adaptivecards');

export const TEAMS_CARD_MAX_BYTES = 28 * 1024;

export function adaptiveCardProblems(card: unknown): string[] {
  const problems: string[] = [];
  if (typeof card !== 'object' || card === null) return ['not an object'];
  const c = card as Record<string, unknown>;
  if (c.type !== 'AdaptiveCard') problems.push(`type is ${String(c.type)}`);
  if (c.version !== '1.5') problems.push(`version is ${String(c.version)}, expected 1.5`);
  const bytes = Buffer.byteLength(JSON.stringify(card));
  if (bytes > TEAMS_CARD_MAX_BYTES) problems.push(`${bytes} bytes, over Teams' ${TEAMS_CARD_MAX_BYTES}`);
  const refresh = c.refresh as { userIds?: unknown[]; action?: { type?: string; verb?: string } } | undefined;
  if (refresh) {
    if (refresh.action?.type !== 'Action.Execute') problems.push('refresh.action must be Action.Execute');
    if ((refresh.userIds?.length ?? 0) > 60) problems.push(`refresh.userIds has ${refresh.userIds!.length} ids (Teams allows 60)`);
  }
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (typeof node !== 'object' || node === null) return;
    const n = node as Record<string, unknown>;
    if (n.type === 'Action.Execute' && typeof n.verb !== 'string') problems.push('an Action.Execute has no verb');
    Object.values(n).forEach(walk);
  };
  walk(card);
  const context = new AC.SerializationContext(AC.Versions.v1_5);
  const parsed = new AC.AdaptiveCard();
  parsed.parse(card, context);
  for (let i = 0; i < context.eventCount; i++) problems.push(`parser: ${context.getEventAt(i).message}`);
  const validation = parsed.validateProperties();
  for (let i = 0; i < validation.validationEvents.length; i++) problems.push(`validation: ${validation.validationEvents[i]!.message}`);
  return problems;
}
