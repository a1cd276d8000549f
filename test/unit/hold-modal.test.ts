// The Hold modal's client picker: a static list while every client fits in Slack's 100 options, an external
// select (answered as the engineer types) past that, so no client is out of reach.
import { describe, expect, it } from 'vitest';
import { holdModal } from '../../src/bot/slack/views.ts';
import { checkView } from '../support/block-kit-limits.ts';

const clients = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `client-${i + 1}`, name: `Client ${i + 1}` }));
const target = { release: '2024-Feb', kb: '5034763', channel: 'C0ENG' };
const picker = (view: Record<string, unknown>) => (view.blocks as Array<{ block_id?: string; element?: Record<string, unknown> }>).find((b) => b.block_id === 'clients')?.element;

describe('Hold modal client picker', () => {
  it('lists all of 100 clients in a static select', () => {
    const view = holdModal(target, clients(100));
    expect(picker(view)).toMatchObject({ type: 'multi_static_select', action_id: 'clients' });
    expect((picker(view)!.options as unknown[]).length).toBe(100);
    expect(checkView(view, { expect: 'modal' })).toEqual([]);
  });

  it('asks patchbay for options past 100 clients, with the same block and action id', () => {
    const view = holdModal(target, clients(101));
    expect(picker(view)).toMatchObject({ type: 'multi_external_select', action_id: 'clients', min_query_length: 0 });
    expect(picker(view)!.options).toBeUndefined();
    expect(checkView(view, { expect: 'modal' })).toEqual([]);
  });

  it('has no picker when there are no clients', () => {
    expect(picker(holdModal(target, []))).toBeUndefined();
  });
});
