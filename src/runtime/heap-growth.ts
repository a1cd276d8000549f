/**
 * After each full collection V8 lets the heap grow to 1.1–4 times what survived it, more the faster a program
 * allocates. patchbay's big steps (an import, a sweep planning a 100,000-device window) allocate fast and keep
 * little: their heaps ran to 2–4 times what was alive, mostly garbage, and where the peak fell varied from run to run
 * (import on PostgreSQL 255–413 MiB; a 100k sweep 282–305 MiB over a live heap of about 33 MiB). 30% keeps the heap
 * within 1.3 times what is alive, at the cost of more full collections, each cheap while little is alive (import at
 * 100,000 devices: 17 instead of 4, about a second; the sweep's time did not move). It caps nothing: the heap's
 * limit is unchanged, so a larger fleet only collects more often. V8 reads the flag each time it sets the next
 * limit, so setting it at run time takes effect.
 */
import { setFlagsFromString } from 'node:v8';

export const HEAP_GROWING_PERCENT = 30;

export function limitHeapGrowth(): void {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
