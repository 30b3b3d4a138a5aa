// Ctrl-C and SIGTERM during training and its evaluations: the first one asks the loop to finish its SGD step,
// checkpoint and stop; a second one exits at once without saving. Node runs these handlers only when the event
// loop gets a turn: the loop awaits one after every SGD step (a replay of free training included) and
// evaluations after every batch and before every attack (nextTurn). Inside one attack on one batch, which can
// run for minutes, the native interrupt flag (src/torch/interrupt.ts) is armed while these handlers are
// installed: the attack checks it every iteration and stops the evaluation there (src/attacks/attack.ts).
import { armInterrupts } from '../torch/index.js';
import { InterruptedError } from './errors.js';

export class Interrupts {
  /** The signal that asked to stop (set by the loop too, when another rank's signal stops the job). */
  requested: string | undefined;
  /** Signals this process received (the second one exits). */
  private received = 0;
  private readonly handlers: [string, () => void][] = [];
  private readonly controller = new AbortController();

  constructor(private readonly warn: (s: string) => void, install = true) {
    if (!install) return;
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      const h = () => this.onSignal(sig);
      process.on(sig, h);
      this.handlers.push([sig, h]);
    }
    armInterrupts(true);
  }

  /** Aborted by the first signal (its reason an InterruptedError): evaluations stop between batches. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  private onSignal(sig: string): void {
    if (++this.received > 1) process.exit(130); // pressed again: give up immediately
    this.requested ??= sig;
    this.warn(`${sig} received: finishing the current step and writing a checkpoint (press again to abort without saving)`);
    this.controller.abort(new InterruptedError(`stopped by ${sig}`));
  }

  uninstall(): void {
    if (!this.handlers.length) return;
    armInterrupts(false);
    for (const [sig, h] of this.handlers) process.off(sig, h);
    this.handlers.length = 0;
  }
}
