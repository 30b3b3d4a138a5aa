// Ctrl-C and SIGTERM during training and its evaluations: the first one asks the loop to finish its SGD step,
// checkpoint and stop (an evaluation in progress stops after its current batch); a second one exits at once
// without saving. Node runs these handlers only when the event loop gets a turn: the loop awaits one after
// every SGD step (a replay of free training included) and evaluations after every batch (nextTurn).
import { InterruptedError } from './errors.js';

export class Interrupts {
  /** The signal that asked to stop (set by the loop too, when another rank's signal stops the job). */
  requested: string | undefined;
  private readonly handlers: [string, () => void][] = [];
  private readonly controller = new AbortController();

  constructor(private readonly warn: (s: string) => void, install = true) {
    if (!install) return;
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      const h = () => this.onSignal(sig);
      process.on(sig, h);
      this.handlers.push([sig, h]);
    }
  }

  /** Aborted by the first signal (its reason an InterruptedError): evaluations stop between batches. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  private onSignal(sig: string): void {
    if (this.requested) process.exit(130); // pressed again: give up immediately
    this.requested = sig;
    this.warn(`${sig} received: finishing the current step and writing a checkpoint (press again to abort without saving)`);
    this.controller.abort(new InterruptedError(`stopped by ${sig}`));
  }

  uninstall(): void {
    for (const [sig, h] of this.handlers) process.off(sig, h);
    this.handlers.length = 0;
  }
}
