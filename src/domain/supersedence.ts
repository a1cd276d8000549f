/**
 * MSRC's supersedence turned around: the release model says which earlier KBs an update `supersedes`; a device
 * manager that drops a superseded update (Tactical deletes its row once Windows Update stops offering it) needs,
 * for each KB it is asked about, the later KBs that replace it. Chains count (the May cumulative update replaces
 * April's, which replaced March's), across releases. Pure.
 */

export interface SupersedingUpdate {
  /** The later update's KB (MSRC writes it without `KB`). */
  kb: string;
  /** The KBs it replaces. */
  supersedes: readonly string[];
}

const bare = (kb: string): string => kb.replace(/^kb/i, '');

/** For each of `kbs`, every KB that replaces it directly or through a chain; none for a KB nothing replaces. */
export function supersededBy(kbs: readonly string[], updates: readonly SupersedingUpdate[]): Map<string, string[]> {
  const replacedBy = new Map<string, string[]>();
  for (const update of updates) {
    for (const old of update.supersedes) {
      const list = replacedBy.get(bare(old)) ?? [];
      if (!list.includes(bare(update.kb))) list.push(bare(update.kb));
      replacedBy.set(bare(old), list);
    }
  }
  const out = new Map<string, string[]>();
  for (const kb of kbs) {
    const seen = new Set<string>([bare(kb)]);
    const later: string[] = [];
    for (let queue = [...(replacedBy.get(bare(kb)) ?? [])]; queue.length > 0; ) {
      const next = queue.shift()!;
      if (seen.has(next)) continue;
      seen.add(next);
      later.push(next);
      queue = queue.concat(replacedBy.get(next) ?? []);
    }
    if (later.length > 0) out.set(kb, later);
  }
  return out;
}
