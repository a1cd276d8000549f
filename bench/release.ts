/** The small release the rollout and report benchmarks patch with. */
import type { Release } from '../src/domain/release.ts';

/** Three updates: one for the desktops, one for the servers, one for every product. */
export function benchRelease(products: Release['products']): Release {
  const update = (id: string, productIds: string[]) => ({
    id, kb: id, name: id, family: 'Windows', productIds, subTypes: [], restartRequired: 'Yes' as const,
    supersedes: [], fixedBuilds: [], urls: [], knownIssues: [], cves: [],
  });
  return {
    id: '2024-Feb', title: 'bench', initialReleaseDate: '2024-02-13T18:00:00Z', currentReleaseDate: '2024-02-13T18:00:00Z', revisions: [],
    products,
    updates: [
      update('5034765', products.filter((p) => !p.name.includes('Server')).map((p) => p.id)),
      update('5034770', products.filter((p) => p.name.includes('Server')).map((p) => p.id)),
      update('5034439', products.map((p) => p.id)),
    ],
    cves: [],
  };
}
