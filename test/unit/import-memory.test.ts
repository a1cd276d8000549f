import { afterEach, describe, expect, it, vi } from 'vitest';

const setFlagsFromString = vi.hoisted(() => vi.fn());
vi.mock('node:v8', async (importOriginal) => ({ ...(await importOriginal<typeof import('node:v8')>()), setFlagsFromString }));

describe('the import command\u2019s memory', () => {
  afterEach(() => {
    // Its calls would otherwise carry into the next test, which would then pass whatever the code does.
    setFlagsFromString.mockClear();
    vi.unstubAllEnvs();
    vi.restoreAllMocks();
    vi.resetModules();
  });

  it('lets V8 grow its heap by at most 30% over what survived a full collection, before reading the file', async () => {
    vi.stubEnv('DATABASE_URL', 'postgres://nobody@127.0.0.1:1/none');
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const { importCommand } = await import('../../src/commands/import.ts');
    await expect(importCommand('/no/such/inventory.yaml', {})).rejects.toThrow(/problem/);
    expect(setFlagsFromString).toHaveBeenCalledWith('--heap-growing-percent=30');
  });

  it('compiles PGlite\u2019s WebAssembly with V8\u2019s quick compiler only on the embedded database, and not for PostgreSQL', async () => {
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    vi.stubEnv('DATABASE_URL', '');
    const { importCommand } = await import('../../src/commands/import.ts');
    await expect(importCommand('/no/such/inventory.yaml', {})).rejects.toThrow(/problem/);
    expect(setFlagsFromString).toHaveBeenCalledWith('--liftoff-only');

    setFlagsFromString.mockClear();
    vi.stubEnv('DATABASE_URL', 'postgres://nobody@127.0.0.1:1/none');
    await expect(importCommand('/no/such/inventory.yaml', {})).rejects.toThrow(/problem/);
    expect(setFlagsFromString).not.toHaveBeenCalledWith('--liftoff-only');
  });

  it('so does `patchbay start`, before anything else: a sweep allocates fast and keeps little', async () => {
    const { startCommand } = await import('../../src/commands/start.ts');
    await expect(startCommand({ role: 'nonsense' })).rejects.toThrow(/not a role/);
    expect(setFlagsFromString).toHaveBeenCalledWith('--heap-growing-percent=30');
  });

  it('PATCHBAY_TRACE_MEMORY=1 writes a line per step with the process\u2019s memory; unset, nothing', async () => {
    const written: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => (written.push(String(chunk)), true));
    vi.stubEnv('PATCHBAY_TRACE_MEMORY', '');
    (await import('../../src/runtime/memory-trace.ts')).traceMemory('quiet');
    expect(written).toEqual([]);

    vi.resetModules();
    vi.stubEnv('PATCHBAY_TRACE_MEMORY', '1');
    (await import('../../src/runtime/memory-trace.ts')).traceMemory('file parsed');
    expect(written).toHaveLength(1);
    expect(written[0]).toMatch(/^memory \d+ms file parsed: rss \d+ heap \d+\/\d+ external \d+ MiB\n$/);
  });
});
