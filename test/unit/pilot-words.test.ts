import { describe, expect, it } from 'vitest';
import { noRunOutcome, plainWords } from '../../src/use-cases/pilot.ts';

describe("the sign-off card's plain words for an update", () => {
  it('says what an update is for when MSRC named it only by its KB number', () => {
    expect(plainWords({ kb: '5034765', title: '5034765', family: 'Windows', restart: 'Yes' })).toBe('Windows security update (KB5034765). Needs a restart.');
    expect(plainWords({ kb: '5034765', title: 'KB5034765', family: null, restart: 'Maybe' })).toBe('Microsoft security update (KB5034765). May need a restart.');
  });

  it('keeps a real title', () => {
    expect(plainWords({ kb: null, title: 'Click to Run', family: 'Microsoft Office', restart: 'No' })).toBe('Click to Run.');
  });
});

describe('a pilot machine the pilot gave no run, on the sign-off card', () => {
  it('has not started before the pilot ran, and had nothing to install once it finished (not "Not started yet")', () => {
    expect([undefined, 'scheduled', 'running'].map(noRunOutcome)).toEqual(['waiting', 'waiting', 'waiting']);
    expect(['awaiting_confirmation', 'confirmed', 'problem', 'waiting', 'finished'].map(noRunOutcome)).toEqual(['nothing', 'nothing', 'nothing', 'nothing', 'nothing']);
  });
});
