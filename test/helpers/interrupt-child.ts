// A process for test/interrupt.test.ts: the native interrupt flag under real signals sent to this process.
//   armed        training's handlers installed (Interrupts): SIGTERM sets the flag while JS never yields; every
//                attack, run inside stoppable(), stops at its next iteration; outside stoppable() it runs to the
//                end; the JS handler runs at the next turn; a second SIGTERM exits with 130
//   uninstalled  the handlers installed, then removed: the flag stays clear and SIGTERM kills the process
//   none         no handlers ever: the flag stays clear and SIGTERM kills the process
// Prints one JSON line of what it saw before the last signal.
import * as T from '../../src/torch/index.js';
import { createModel } from '../../src/models/index.js';
import { makeAttack, stoppable, interruptionPoint, AttackInterrupted } from '../../src/attacks/index.js';
import { Interrupts } from '../../src/train/signals.js';

const mode = process.argv[2];
const res: Record<string, unknown> = { mode };
const print = () => process.stdout.write(JSON.stringify(res) + '\n');

/** Busy-waits (JS never yields) until the flag is set, or `ms` pass; the milliseconds it took, or -1. */
function spinUntilPending(ms: number): number {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) if (T.pendingInterrupt()) return performance.now() - t0;
  return -1;
}

/** Nanoseconds per call of interruptionPoint() inside stoppable() (the flag clear) and outside it. */
function cost(): { inside: number; outside: number } {
  const n = 1_000_000;
  const time = (f: () => void) => {
    const t0 = performance.now();
    f();
    return ((performance.now() - t0) * 1e6) / n;
  };
  const loop = () => {
    for (let i = 0; i < n; i++) interruptionPoint();
  };
  loop(); // warm up
  return { inside: time(() => stoppable(loop)), outside: time(loop) };
}

T.setNumThreads(1);
if (mode === 'armed') {
  const warnings: string[] = [];
  const interrupts = new Interrupts((s) => warnings.push(s));
  res.before = T.pendingInterrupt() ?? null;
  res.nsPerCheck = cost();
  process.kill(process.pid, 'SIGTERM');
  res.spinMs = spinUntilPending(5000);
  res.pending = T.pendingInterrupt() ?? null;
  res.handlerRanBeforeTurn = interrupts.requested !== undefined;

  // a random small CNN on 16 images, labelled with its own predictions: every example starts correct, and at
  // ε = 0 no attack can fool one, so each runs all its iterations unless it stops
  T.manualSeed(0);
  const model = createModel('small-cnn', { numClasses: 10, inChannels: 1, size: 28, mean: [0.5], std: [0.25] }).eval();
  const x = T.rand([16, 1, 28, 28]).keep();
  const y = T.noGrad(() => model.forward(x).argmax(1)).keep();
  res.attacks = {};
  for (const name of ['pgd-1000', 'cw-1000', 'apgd-ce-1000', 'apgd-dlr-1000', 'apgd-t', 'fab-t', 'square-100000', 'autoattack']) {
    const atk = makeAttack(name, model, { eps: 0 });
    const t0 = performance.now();
    let outcome: string;
    try {
      stoppable(() => atk.run(x, y)).dispose();
      outcome = 'ran to the end';
    } catch (e) {
      outcome = e instanceof AttackInterrupted ? `stopped by ${e.signal}` : `threw ${(e as Error).name}: ${(e as Error).message}`;
    }
    (res.attacks as Record<string, unknown>)[name] = { outcome, ms: performance.now() - t0 };
  }
  // outside stoppable() (a training step's attack) the flag does not stop an attack
  const t0 = performance.now();
  makeAttack('pgd-5', model, { eps: 0 }).run(x, y).dispose();
  res.outside = { outcome: 'ran to the end', ms: performance.now() - t0 };

  // Node's own handler runs at the next poll phase of the event loop: one or two turns
  let turns = 0;
  while (interrupts.requested === undefined && turns < 50) {
    await new Promise((r) => setImmediate(r));
    turns++;
  }
  res.turns = turns;
  res.requested = interrupts.requested ?? null;
  res.aborted = interrupts.signal.aborted;
  res.warnings = warnings;
  print();
  process.kill(process.pid, 'SIGTERM'); // the second signal: exit 130 at once
  await new Promise((r) => setTimeout(r, 3000));
  process.stdout.write('still running after the second SIGTERM\n');
} else {
  if (mode === 'uninstalled') {
    const interrupts = new Interrupts(() => undefined);
    interrupts.uninstall();
  }
  res.before = T.pendingInterrupt() ?? null;
  print();
  process.kill(process.pid, 'SIGTERM'); // the default action: the process ends by the signal
  res.after = spinUntilPending(3000) < 0 ? null : T.pendingInterrupt();
  process.stdout.write('still running after SIGTERM: ' + JSON.stringify(res) + '\n');
  await new Promise((r) => setTimeout(r, 3000));
  process.stdout.write('still running\n');
}
