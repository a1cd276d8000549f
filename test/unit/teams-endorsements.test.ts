// The Bot Framework JWKS endorses each signing key for a list of channels; the Teams SDK does not check it, so
// endorsements.ts does, before the SDK. These run it against a real HTTP keys endpoint that can fail.
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { endorses, KeyEndorsements, keyIdOf } from '../../src/bot/teams/endorsements.ts';

const bearer = (kid: string | undefined) => `Bearer ${Buffer.from(JSON.stringify({ alg: 'RS256', ...(kid ? { kid } : {}) })).toString('base64url')}.e30.sig`;
let server: http.Server;
let url: string;
let requests = 0;
let failing = false;
let keys: Array<{ kid: string; endorsements?: string[] }> = [{ kid: 'teams', endorsements: ['msteams', 'skype'] }];

beforeAll(async () => {
  server = http.createServer((_req, res) => {
    requests++;
    if (failing) return void res.writeHead(503).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/.well-known/keys`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('the endorsement rule (botbuilder EndorsementsValidator)', () => {
  it('passes a key that names the channel, refuses one that does not or names none, and passes when there is no channel', () => {
    expect(endorses(['msteams'], 'msteams')).toBe(true);
    expect(endorses(['webchat'], 'msteams')).toBe(false);
    expect(endorses(undefined, 'msteams')).toBe(false);
    expect(endorses([], undefined)).toBe(true);
  });

  it('reads the key id from the token header, and nothing from what is not a JWT', () => {
    expect(keyIdOf(bearer('k1'))).toBe('k1');
    expect(keyIdOf(bearer(undefined))).toBeUndefined();
    expect(keyIdOf('Bearer not-a-jwt')).toBeUndefined();
    expect(keyIdOf(undefined)).toBeUndefined();
  });
});

describe('KeyEndorsements', () => {
  it('reads the keys once a day, again for an unknown key at most every five minutes, and keeps them when a read fails', async () => {
    let now = 0;
    requests = 0;
    keys = [{ kid: 'teams', endorsements: ['msteams'] }];
    const check = new KeyEndorsements({ keysUrl: url, log: pino({ level: 'silent' }), now: () => now });
    expect(await check.allows(bearer('teams'), 'msteams')).toBe(true);
    expect(await check.allows(bearer('teams'), 'webchat')).toBe(false);
    expect(requests).toBe(1);
    // A key not published yet: read again (rotation), but not on every request.
    keys = [...keys, { kid: 'webchat-only', endorsements: ['webchat'] }];
    now = 60_000;
    expect(await check.allows(bearer('webchat-only'), 'msteams')).toBe(true); // not read again yet: the SDK refuses an unknown key
    expect(requests).toBe(1);
    now = 6 * 60_000;
    expect(await check.allows(bearer('webchat-only'), 'msteams')).toBe(false);
    expect(requests).toBe(2);
    // The daily read fails: what was read before still decides.
    failing = true;
    now = 25 * 3_600_000;
    expect(await check.allows(bearer('webchat-only'), 'msteams')).toBe(false);
    expect(await check.allows(bearer('teams'), 'msteams')).toBe(true);
    expect(requests).toBe(3);
    failing = false;
  });

  it('refuses every token with a key id while no keys could ever be read, retrying at most every ten seconds', async () => {
    let now = 0;
    requests = 0;
    failing = true;
    const check = new KeyEndorsements({ keysUrl: url, log: pino({ level: 'silent' }), now: () => now });
    expect(await check.allows(bearer('teams'), 'msteams')).toBe(false);
    expect(await check.allows(bearer('teams'), 'msteams')).toBe(false);
    expect(requests).toBe(1);
    failing = false;
    now = 11_000;
    expect(await check.allows(bearer('teams'), 'msteams')).toBe(true);
    expect(requests).toBe(2);
  });

  it('reads the keys once for requests that arrive together', async () => {
    requests = 0;
    keys = [{ kid: 'teams', endorsements: ['msteams'] }];
    const check = new KeyEndorsements({ keysUrl: url, log: pino({ level: 'silent' }) });
    const answers = await Promise.all(Array.from({ length: 20 }, () => check.allows(bearer('teams'), 'msteams')));
    expect(answers.every(Boolean)).toBe(true);
    expect(requests).toBe(1);
  });
});
