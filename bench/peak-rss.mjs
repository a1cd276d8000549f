// Preloaded into a child process (`node --import ./bench/peak-rss.mjs …`) by the import benchmark: reports the
// process's peak resident set size when it exits, as the last line on stderr. maxRSS is the kernel's own high-water
// mark, so no sampling can miss a short peak.
process.on('exit', () => {
  process.stderr.write(`\nPEAK_RSS_KIB ${process.resourceUsage().maxRSS}\n`);
});
