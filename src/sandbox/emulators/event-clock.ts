/**
 * The device side of an emulated device manager runs as events on the injected clock: an install's rows finishing,
 * a reboot coming back, a policy firing. Both RMM emulators (Tactical, NinjaOne) queue their machines' work here.
 * While an event runs, "now" is its instant, so what it schedules follows from when it happened, not from when the
 * next request arrived.
 */
export class EventClock {
  private events: Array<{ at: number; seq: number; run: () => void }> = [];
  private seq = 0;
  private eventAt: number | undefined;

  constructor(private readonly now: () => Date) {}

  /** The running event's instant, else the clock's. */
  nowMs(): number {
    return this.eventAt ?? this.now().getTime();
  }

  /** Queues `run` at `ms`; events at one instant run in the order they were queued. */
  at(ms: number, run: () => void): void {
    this.events.push({ at: ms, seq: this.seq++, run });
  }

  /** Runs every event due by `nowMs`, including those the running ones queue before it. */
  runDue(nowMs: number): void {
    for (;;) {
      this.events.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.events[0];
      if (!next || next.at > nowMs) break;
      this.events.shift();
      this.eventAt = next.at;
      try {
        next.run();
      } finally {
        this.eventAt = undefined;
      }
    }
  }
}
