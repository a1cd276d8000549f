/**
 * Where a failed run goes when an engineer presses Retry failed: back into its own window if that window is
 * still open with room for an install, else into the device's window open now (with room), else the device's
 * next window. Pure: the window, the device's rule and `now` come in. Never a window without an install's budget,
 * so a retry cannot put a reboot outside a window.
 */
import type { DateTime } from 'luxon';
import type { WindowRule } from './window-spec.ts';
import { canStartStep, nextWindow, windowContaining, type MaintenanceWindow } from './windows.ts';

export type RetryTarget =
  /** Its own window is still open with budget: the same run starts again now. */
  | { kind: 'again' }
  /** A new run in this window (open now with budget, or the next one). */
  | { kind: 'window'; window: MaintenanceWindow; now: boolean };

export function retryTarget(input: { window: MaintenanceWindow; rule: WindowRule | undefined; zone: string; now: DateTime; budgetMinutes: number }): RetryTarget | undefined {
  const { window, rule, zone, now, budgetMinutes } = input;
  if (canStartStep(window, now, budgetMinutes)) return { kind: 'again' };
  if (!rule) return undefined;
  const open = windowContaining(rule, zone, now);
  if (open && open.start.toMillis() !== window.start.toMillis() && canStartStep(open, now, budgetMinutes)) return { kind: 'window', window: open, now: true };
  let next = nextWindow(rule, zone, now);
  // A window too short for an install (a spring-forward night cut to less than the budget) is passed over.
  for (let i = 0; i < 8 && (next.end.toMillis() - next.start.toMillis()) / 60_000 < budgetMinutes; i++) next = nextWindow(rule, zone, next.start);
  return { kind: 'window', window: next, now: false };
}
