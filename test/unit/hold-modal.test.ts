// The Hold modal's client picker: a static list while every client fits in Slack's 100 options, an external
// select (answered as the engineer types) past that, so no client is out of reach.
import { describe, expect, it } from 'vitest';
import { holdModal, holdModalErrors } from '../../src/chat/slack/views.ts';
import { renderDigestStatus } from '../../src/chat/slack/decision-blocks.ts';
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

// Issue 13 finding 6: picking a client while "All clients" stayed selected held every client, silently.
describe('Hold modal submission', () => {
  const base = { reason: 'Breaks the EMR', hasPicker: true };

  it('refuses clients picked while "All clients" is selected, next to the choice', () => {
    const errors = holdModalErrors({ ...base, scope: 'all', chosen: ['acme-dental'] });
    expect(Object.keys(errors)).toEqual(['scope']);
    expect(errors.scope).toMatch(/picked a client but "All clients" is selected/);
    expect(holdModalErrors({ ...base, scope: 'all', chosen: ['a', 'b'] }).scope).toMatch(/picked 2 clients/);
  });

  it('accepts all clients with none picked, and chosen clients with some picked', () => {
    expect(holdModalErrors({ ...base, scope: 'all', chosen: [] })).toEqual({});
    expect(holdModalErrors({ ...base, scope: 'chosen', chosen: ['acme-dental'] })).toEqual({});
  });

  it('asks for a client when "Chosen clients" has none, and for a reason', () => {
    expect(holdModalErrors({ ...base, scope: 'chosen', chosen: [] })).toEqual({ clients: expect.stringMatching(/Choose at least one client/) });
    expect(holdModalErrors({ ...base, hasPicker: false, scope: 'chosen', chosen: [] })).toEqual({ scope: expect.stringMatching(/Choose at least one client/) });
    expect(holdModalErrors({ ...base, reason: '', scope: 'all', chosen: [] }).reason).toBeDefined();
  });
});

describe('A scoped hold in the digest thread', () => {
  it('names the client by its name, not its id', () => {
    const original = {
      text: 'x',
      blocks: [
        { type: 'section', text: { type: 'mrkdwn', text: 'KB5034763' } },
        { type: 'actions', block_id: 'actions:update:5034763', elements: [{ type: 'button', action_id: 'update.approve', text: { type: 'plain_text', text: 'Approve' }, value: JSON.stringify({ release: '2024-Feb', kb: '5034763' }) }] },
      ],
    };
    const hold = { id: 'h1', updateKey: '5034763', clientId: 'acme-dental', ring: null, reason: 'EMR', by: 'U0PAT', at: '2024-02-13T20:00:00.000Z' };
    const standing = { approval: null, viaRelease: false, holds: [hold] };
    const out = renderDigestStatus(original as never, {
      releaseId: '2024-Feb',
      release: { approval: null, viaRelease: false, holds: [] },
      updates: new Map([['5034763', { standing: standing as never, notes: [] }]]),
      zone: 'America/Chicago',
      now: new Date('2024-02-13T21:00:00Z'),
      clientNames: new Map([['acme-dental', 'Acme Dental']]),
    });
    const text = JSON.stringify(out.blocks);
    expect(text).toContain('*Held* (Acme Dental) by <@U0PAT>');
    expect(text).not.toContain('acme-dental');
  });

  it('names a champion whose problem report placed the hold by display name, not their Teams GUID', () => {
    const guid = '6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f';
    const button = { type: 'button', action_id: 'release.approve', text: { type: 'plain_text', text: 'Approve release' }, value: JSON.stringify({ release: '2024-Feb' }) };
    const original = { text: 'x', blocks: [{ type: 'actions', block_id: 'release:2024-Feb', elements: [button] }] };
    const hold = { id: 'h1', updateKey: null, clientId: 'acme-dental', ring: null, reason: 'Pilot problem: printers', by: guid, at: '2024-02-13T20:00:00.000Z' };
    const out = renderDigestStatus(original as never, {
      releaseId: '2024-Feb',
      release: { approval: null, viaRelease: false, holds: [hold] as never },
      updates: new Map(),
      zone: 'America/Chicago',
      now: new Date('2024-02-13T21:00:00Z'),
      clientNames: new Map([['acme-dental', 'Acme Dental']]),
      personNames: new Map([[guid, 'Ana Silva']]),
    });
    const text = JSON.stringify(out.blocks);
    expect(text).toContain('*Held* (Acme Dental) by Ana Silva');
    expect(text).not.toContain(guid);
  });
});
