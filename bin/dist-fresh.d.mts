export function distIsFresh(root: URL): boolean;
