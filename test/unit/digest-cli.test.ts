import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cliTestTimeout } from '../support/cli.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const bin = path.join(repoRoot, 'bin/patchbay.mjs');
const fixture = path.join(repoRoot, 'test/fixtures/msrc/edge-cases.json');
const shared = path.resolve(repoRoot, '../shared/fixtures');
const hasShared = existsSync(path.join(shared, 'msrc/2024-Feb.json'));
if (!hasShared) console.warn(`[digest-cli] ${shared} is absent: the real-month CLI test is skipped`);

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, 'digest', ...args], { cwd: repoRoot, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

// Up to four spawns of the CLI in one case.
describe('patchbay digest', { timeout: cliTestTimeout(4) }, () => {
  it('prints the JSON digest offline', async () => {
    const { code, stdout, stderr } = await run(['--cvrf', fixture, '--json', '--now', '2024-06-12T00:00:00Z']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const json = JSON.parse(stdout);
    expect(json.month).toBe('2024-Jun');
    expect(json.totals).toMatchObject({ cves: 2, addedAfterRelease: 1, critical: 1, exploited: 1, publiclyDisclosed: 1 });
    expect(json.separate).toEqual({ edgeChromium: 1, azureLinux: 1, otherVendors: 1 });
  });

  it('prints Slack messages and a card', async () => {
    const blocks = await run(['--cvrf', fixture, '--blocks']);
    expect(blocks.code).toBe(0);
    const messages = JSON.parse(blocks.stdout);
    expect(Array.isArray(messages)).toBe(true);
    expect(messages[0]).toHaveProperty('text');
    expect(messages[0]).toHaveProperty('blocks');
    const card = await run(['--cvrf', fixture, '--card']);
    expect(JSON.parse(card.stdout).version).toBe('1.5');
  });

  it('bad input exits non-zero and says what and where', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'patchbay-digest-'));
    const broken = path.join(dir, 'broken.json');
    const doc = JSON.parse(readFileSync(fixture, 'utf8'));
    doc.Vulnerability[2].Threats = 'none';
    writeFileSync(broken, JSON.stringify(doc));
    const wrongShape = await run(['--cvrf', broken, '--json']);
    expect(wrongShape.code).toBe(1);
    expect(wrongShape.stdout).toBe('');
    expect(wrongShape.stderr).toContain('Vulnerability[2].Threats: expected an array');

    const truncated = path.join(dir, 'truncated.json');
    writeFileSync(truncated, readFileSync(fixture, 'utf8').slice(0, 4000));
    const cut = await run(['--cvrf', truncated, '--text']);
    expect(cut.code).toBe(1);
    expect(cut.stderr).toMatch(/truncated\.json: truncated JSON/);

    const missing = await run(['--cvrf', path.join(dir, 'nope.json')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no such file');

    const two = await run(['--cvrf', fixture, '--json', '--text']);
    expect(two.code).toBe(2);
    expect(two.stderr).toContain('choose one output');
  });

  it('a hostile document is one line naming what is wrong and where, not a stack trace', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'patchbay-digest-hostile-'));
    const deep = path.join(dir, 'deep.json');
    const doc = JSON.parse(readFileSync(fixture, 'utf8'));
    let node: Record<string, unknown> = { Type: 2, Name: 'leaf' };
    for (let i = 0; i < 1000; i++) node = { Type: 0, Name: 'n', Items: [node] };
    doc.ProductTree.Branch = [node];
    writeFileSync(deep, JSON.stringify(doc));
    const nested = await run(['--cvrf', deep, '--json']);
    expect(nested.code).toBe(1);
    expect(nested.stderr).toBe(`patchbay: --cvrf: ${deep}: ProductTree.Branch[0].Items[0].Items[0].Items…: nested more than 64 levels deep (MSRC's and CISA's documents nest about 8)\n`);

    // Sparse: 65 MB on paper, nothing on disk.
    const huge = path.join(dir, 'huge.json');
    writeFileSync(huge, '{');
    truncateSync(huge, 65 * 1024 * 1024);
    const large = await run(['--cvrf', huge, '--json']);
    expect(large.code).toBe(1);
    expect(large.stderr).toBe(`patchbay: --cvrf: ${huge}: more than 64 MB, larger than the 64 MB a document may be (MSRC's months are a few MB); not read\n`);
    rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(!hasShared)('2024-Feb with the KEV catalog: the numbers the issue names', async () => {
    const { code, stdout } = await run(['--cvrf', path.join(shared, 'msrc/2024-Feb.json'), '--kev', path.join(shared, 'kev/known_exploited_vulnerabilities.json'), '--json']);
    expect(code).toBe(0);
    const json = JSON.parse(stdout);
    // 72 published on release day (the press said 73) and CVE-2024-21315, published a week later, beside it.
    expect(json.totals).toMatchObject({ cves: 72, addedAfterRelease: 1, critical: 5, exploited: 4, publiclyDisclosed: 0 });
    expect(json.updates.find((u: { kb: string }) => u.kb === '5034763')).toMatchObject({ severity: 'Critical', exploited: 3, restartRequired: 'Yes' });
  });
});
