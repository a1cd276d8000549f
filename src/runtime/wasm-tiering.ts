/**
 * V8 compiles WebAssembly twice: a quick first tier (Liftoff), then the functions that run hot again with its
 * optimising compiler (TurboFan), on background threads whose memory the C allocator keeps once they are done.
 * PGlite's module is PostgreSQL itself: with TurboFan a 100,000-device re-import on the embedded database peaked
 * 90 MiB higher than with Liftoff alone, which took 21 s instead of 15 (one back-to-back pair, under load). A
 * one-shot command whose budget is memory takes Liftoff only; `patchbay start`, which runs for days, keeps the
 * optimised code. V8 reads the flag when it compiles, so it must be set before the database opens.
 */
import { setFlagsFromString } from 'node:v8';

export function compileWasmQuicklyOnly(): void {
  setFlagsFromString('--liftoff-only');
}
