import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { chooseTestBackend, DEFAULT_TEST_DATABASE_URL, probePostgres, type ProbeResult } from '../support/test-backend.ts';

/** A port nothing listens on: bound by the OS, then let go. */
async function unusedPort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const servers: net.Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

/** Something on the port that is not PostgreSQL: it answers the startup message with junk. */
async function notPostgres(): Promise<number> {
  // once: the client may send more after the junk answer (or reset), and a second end would throw in the test process
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return (server.address() as net.AddressInfo).port;
}

const quickProbe = (url: string) => probePostgres(url, 2_000);
const neverProbe = async (): Promise<ProbeResult> => {
  throw new Error('probed, though the choice was already made');
};

describe('which database the tests run on', () => {
  it('no PostgreSQL on the default address and nothing asked for: PGlite, with one line saying so', async () => {
    const defaultUrl = `postgres://postgres@127.0.0.1:${await unusedPort()}/postgres`;
    const choice = await chooseTestBackend({}, { probe: quickProbe, defaultUrl });
    expect(choice.backend).toBe('pglite');
    expect(choice.notice).toContain(`No PostgreSQL answers at ${defaultUrl}`);
    expect(choice.notice).toContain('PGlite');
    expect(choice.notice).not.toContain('\n');
  });

  it('TEST_DATABASE_URL set and not answering: an error, never a quiet fallback, and no password in it', async () => {
    const url = `postgres://ci:hunter2-secret@127.0.0.1:${await unusedPort()}/patchbay`;
    const failure = chooseTestBackend({ TEST_DATABASE_URL: url }, { probe: quickProbe });
    await expect(failure).rejects.toThrow(/need PostgreSQL \(TEST_DATABASE_URL is set\)/);
    await expect(failure).rejects.not.toThrow(/hunter2/);
  });

  it('PATCHBAY_TEST_DB=postgres (as CI sets it) and no PostgreSQL: an error', async () => {
    const defaultUrl = `postgres://postgres@127.0.0.1:${await unusedPort()}/postgres`;
    await expect(chooseTestBackend({ PATCHBAY_TEST_DB: 'postgres' }, { probe: quickProbe, defaultUrl })).rejects.toThrow(/PATCHBAY_TEST_DB=postgres is set/);
  });

  it('a server on the default address that is not a usable PostgreSQL: an error, not PGlite', async () => {
    const defaultUrl = `postgres://postgres@127.0.0.1:${await notPostgres()}/postgres`;
    await expect(chooseTestBackend({}, { probe: quickProbe, defaultUrl })).rejects.toThrow(/refused the tests/);
  });

  it('PATCHBAY_TEST_DB=pglite is taken as asked, without probing; an unknown value is refused', async () => {
    expect(await chooseTestBackend({ PATCHBAY_TEST_DB: 'pglite', TEST_DATABASE_URL: DEFAULT_TEST_DATABASE_URL }, { probe: neverProbe })).toEqual({ backend: 'pglite' });
    await expect(chooseTestBackend({ PATCHBAY_TEST_DB: 'sqlite' }, { probe: neverProbe })).rejects.toThrow(/use postgres or pglite/);
  });

  it('a PostgreSQL that answers is used, quietly', async () => {
    expect(await chooseTestBackend({}, { probe: async () => ({ ok: true }) })).toEqual({ backend: 'postgres' });
  });

  it.runIf(process.env.PATCHBAY_TEST_DB === 'postgres')('the PostgreSQL this run uses answers the real probe', async () => {
    const url = process.env.TEST_DATABASE_URL || DEFAULT_TEST_DATABASE_URL;
    expect(await chooseTestBackend({ TEST_DATABASE_URL: url })).toEqual({ backend: 'postgres' });
  });

  it('the global setup\u2019s choice reached this worker', () => {
    expect(['postgres', 'pglite']).toContain(process.env.PATCHBAY_TEST_DB);
  });
});
