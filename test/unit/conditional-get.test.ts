/** The emulators' conditional GET against the cases RFC 9110 spells out (§13.1.2, §13.1.3, §13.2.2, §15.4.5). */
import { describe, expect, it } from 'vitest';
import { notModified, notModifiedHeaders } from '../../src/sandbox/emulators/conditional-get.ts';

const lastModified = new Date('2024-05-14T17:03:00Z');
const strong = { etag: '"xyzzy"', lastModified };
const weak = { etag: 'W/"xyzzy"', lastModified };
const get = (headers: { ifNoneMatch?: string; ifModifiedSince?: string }, method = 'GET') => ({ method, ...headers });

describe('conditional GET (RFC 9110)', () => {
  it('If-None-Match: a listed tag matches by weak comparison, W/ on either side or both', () => {
    expect(notModified(get({ ifNoneMatch: '"xyzzy"' }), strong)).toBe(true);
    expect(notModified(get({ ifNoneMatch: 'W/"xyzzy"' }), strong)).toBe(true);
    expect(notModified(get({ ifNoneMatch: '"xyzzy"' }), weak)).toBe(true);
    expect(notModified(get({ ifNoneMatch: '"r2d2xxxx", "c3piozzzz", "xyzzy"' }), strong)).toBe(true);
    expect(notModified(get({ ifNoneMatch: '"r2d2xxxx", "c3piozzzz"' }), strong)).toBe(false);
    // Opaque tags compare character by character: case and surrounding text matter.
    expect(notModified(get({ ifNoneMatch: '"XYZZY"' }), strong)).toBe(false);
    expect(notModified(get({ ifNoneMatch: 'xyzzy' }), strong)).toBe(false);
  });

  it('If-None-Match "*" matches any current representation; a resource without an ETag matches no listed tag', () => {
    expect(notModified(get({ ifNoneMatch: '*' }), strong)).toBe(true);
    expect(notModified(get({ ifNoneMatch: '"xyzzy"' }), { lastModified })).toBe(false);
  });

  it('If-Modified-Since is ignored when If-None-Match is present, even when the date alone would say 304', () => {
    expect(notModified(get({ ifNoneMatch: '"other"', ifModifiedSince: 'Tue, 14 May 2024 17:03:00 GMT' }), strong)).toBe(false);
    expect(notModified(get({ ifModifiedSince: 'Tue, 14 May 2024 17:03:00 GMT' }), strong)).toBe(true);
  });

  it('If-Modified-Since: 304 when not modified after the date, at one-second resolution; all three date forms', () => {
    expect(notModified(get({ ifModifiedSince: 'Tue, 14 May 2024 17:02:59 GMT' }), strong)).toBe(false);
    expect(notModified(get({ ifModifiedSince: 'Tue, 14 May 2024 17:03:00 GMT' }), { lastModified: new Date('2024-05-14T17:03:00.900Z') })).toBe(true);
    expect(notModified(get({ ifModifiedSince: 'Tuesday, 14-May-24 17:03:00 GMT' }), strong)).toBe(true);
    expect(notModified(get({ ifModifiedSince: 'Tue May 14 17:03:00 2024' }), strong)).toBe(true);
  });

  it('If-Modified-Since is ignored when not a valid HTTP-date, not one member, not GET/HEAD, or the resource has no date', () => {
    expect(notModified(get({ ifModifiedSince: '2024-05-14T17:03:00Z' }), strong)).toBe(false);
    expect(notModified(get({ ifModifiedSince: 'Tue, 14 May 2024 17:03:00 GMT, Tue, 14 May 2024 17:03:00 GMT' }), strong)).toBe(false);
    expect(notModified(get({ ifModifiedSince: 'Tue, 14 May 2024 17:03:00 GMT' }, 'POST'), strong)).toBe(false);
    expect(notModified(get({ ifModifiedSince: 'Tue, 14 May 2024 17:03:00 GMT' }, 'HEAD'), strong)).toBe(true);
    expect(notModified(get({ ifModifiedSince: 'Tue, 14 May 2024 17:03:00 GMT' }), { etag: '"xyzzy"' })).toBe(false);
    expect(notModified(get({}), strong)).toBe(false);
  });

  it('a 304 carries the ETag a 200 would, and Last-Modified only without one', () => {
    const now = new Date('2024-05-14T17:10:00Z');
    expect(notModifiedHeaders(strong, now)).toEqual({ etag: '"xyzzy"', date: 'Tue, 14 May 2024 17:10:00 GMT' });
    expect(notModifiedHeaders({ lastModified }, now)).toEqual({ date: 'Tue, 14 May 2024 17:10:00 GMT', 'last-modified': 'Tue, 14 May 2024 17:03:00 GMT' });
  });
});
