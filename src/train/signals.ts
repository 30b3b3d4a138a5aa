// Ctrl-C and SIGTERM during training: the first one asks the loop to finish its step, checkpoint and stop;
// a second one exits at once without saving.
export class Interrupts {
  /** The signal that asked to stop (set by the loop too, when another rank's signal stops the job). */
  requested: string | undefined;
  private readonly handlers: [string, () => void][] = [];

  constructor(private readonly warn: (s: string) => void, install = true) {
    if (!install) return;
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      const h = () => this.onSignal(sig);
      process.on(sig, h);
      this.handlers.push([sig, h]);
    }
  }

  private onSignal(sig: string): void {
    if (this.requested) process.exit(130); // pressed again: give up immediately
    this.requested = sig;
    this.warn(`${sig} received: finishing the current step and writing a checkpoint (press again to abort without saving)`);
  }

  uninstall(): void {
    for (const [sig, h] of this.handlers) process.off(sig, h);
    this.handlers.length = 0;
  }
}
