// The native interrupt flag (native/interrupt.cc): SIGINT or SIGTERM, recorded as it arrives, even while
// JavaScript is busy and Node's own handlers wait for a turn of the event loop. Armed only while the caller has
// installed handlers of its own (a watched signal no longer kills the process by default): src/train/signals.ts.
import { constants } from 'node:os';
import { native } from './native.js';

const NAMES = new Map<number, NodeJS.Signals>([[constants.signals.SIGINT, 'SIGINT'], [constants.signals.SIGTERM, 'SIGTERM']]);

let holders = 0;

/**
 * Starts (clearing the flag) or stops watching SIGINT and SIGTERM; counted, so that the watcher stays armed while
 * any caller that armed it has not disarmed it. A no-op with an addon built without the watcher.
 */
export function armInterrupts(on: boolean): void {
  if (on ? holders++ === 0 : holders > 0 && --holders === 0) native.interruptArm?.(on);
}

/** The first SIGINT/SIGTERM since armInterrupts(true), or undefined (always while disarmed). A synchronous read of an atomic. */
export function pendingInterrupt(): NodeJS.Signals | undefined {
  const n = native.interruptPending?.() ?? 0;
  return n ? NAMES.get(n) : undefined;
}
