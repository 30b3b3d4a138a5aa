// Learning-rate schedules, evaluated per SGD step (step = 0 … total−1). Pure functions of the step, so a
// resumed run needs only the step count to continue exactly.

export const SCHEDULE_NAMES = ['constant', 'multistep', 'piecewise', 'cosine', 'cyclic'] as const;
export type ScheduleName = (typeof SCHEDULE_NAMES)[number];

export interface ScheduleOptions {
  name: ScheduleName;
  /** Peak learning rate. */
  lr: number;
  /** Total SGD steps of the run. */
  totalSteps: number;
  /** multistep: fractions of the run (or absolute steps if > 1) at which lr is multiplied by gamma. */
  milestones?: number[];
  gamma?: number;
  /** piecewise: [step or fraction of the run, multiple of lr] knots, linearly interpolated. */
  knots?: [number, number][];
  /** Linear warm-up from 0 over this many steps. */
  warmupSteps?: number;
}

export type Schedule = (step: number) => number;

const at = (x: number, total: number) => (x <= 1 ? Math.round(x * total) : x);

export function makeSchedule(o: ScheduleOptions): Schedule {
  const T = Math.max(1, o.totalSteps);
  let base: Schedule;
  switch (o.name) {
    case 'constant':
      base = () => o.lr;
      break;
    case 'multistep': {
      // The paper: 0.1 → 0.01 → 0.001 at fixed steps (default: half and three quarters of the run).
      const ms = (o.milestones ?? [0.5, 0.75]).map((m) => at(m, T));
      const g = o.gamma ?? 0.1;
      base = (s) => o.lr * g ** ms.filter((m) => s >= m).length;
      break;
    }
    case 'cosine':
      base = (s) => 0.5 * o.lr * (1 + Math.cos((Math.PI * Math.min(s, T)) / T));
      break;
    case 'cyclic':
    case 'piecewise': {
      // cyclic = one cycle: 0 → lr at 40% of the run → 0 at the end (as in "Fast is better than free").
      const shape = o.name === 'cyclic' || !o.knots ? [[0, 0], [0.4, 1], [1, 0]] : o.knots;
      const knots = shape.map(([x, y]) => [at(x!, T), y! * o.lr] as [number, number]);
      base = (s) => {
        if (s <= knots[0]![0]) return knots[0]![1];
        for (let i = 1; i < knots.length; i++) {
          const [x0, y0] = knots[i - 1]!;
          const [x1, y1] = knots[i]!;
          if (s <= x1) return x1 === x0 ? y1 : y0 + ((y1 - y0) * (s - x0)) / (x1 - x0);
        }
        return knots[knots.length - 1]![1];
      };
      break;
    }
    default:
      throw new RangeError(`unknown lr schedule '${String(o.name)}' (known: constant, multistep, piecewise, cosine, cyclic)`);
  }
  const w = o.warmupSteps ?? 0;
  return w > 0 ? (s) => (s < w ? (base(s) * (s + 1)) / w : base(s)) : base;
}
