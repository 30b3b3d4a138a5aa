// Progress display: batches done / total, images/s and ETA. A single `\r`-rewritten line when the stream is
// a TTY, plain lines every `intervalMs` (and at the end) otherwise.

export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  total: number;
  label?: string;
  stream?: ProgressStream;
  /** Minimum time between redraws (TTY, default 100 ms) or printed lines (non-TTY, default 10 s). */
  intervalMs?: number;
  /** Clock in ms (tests inject one). */
  now?: () => number;
  /** Extra text shown after the rate, e.g. the running loss. */
  extra?: () => string;
}

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '--:--';
  const s = Math.round(sec);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = String(m).padStart(2, '0'), ss = String(r).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export class Progress {
  readonly total: number;
  private done = 0;
  private images = 0;
  private readonly t0: number;
  private lastDraw = -Infinity;
  private finished = false;
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly interval: number;
  private readonly now: () => number;
  private readonly label: string;
  private readonly extra?: () => string;

  constructor(opts: ProgressOptions) {
    this.total = opts.total;
    this.stream = opts.stream ?? process.stdout;
    this.tty = Boolean(this.stream.isTTY);
    this.interval = opts.intervalMs ?? (this.tty ? 100 : 10_000);
    this.now = opts.now ?? (() => performance.now());
    this.t0 = this.now();
    this.label = opts.label ?? '';
    this.extra = opts.extra;
  }

  /** Records one finished batch of `images` images. */
  tick(images: number, batches = 1): void {
    this.done += batches;
    this.images += images;
    const t = this.now();
    if (this.done >= this.total) return this.finish();
    if (t - this.lastDraw >= this.interval) {
      this.lastDraw = t;
      this.draw(false);
    }
  }

  /** Current numbers: batches done, images/s, seconds elapsed and estimated remaining. */
  snapshot(): { done: number; total: number; images: number; elapsedS: number; imagesPerS: number; etaS: number } {
    const elapsedS = (this.now() - this.t0) / 1000;
    const imagesPerS = elapsedS > 0 ? this.images / elapsedS : 0;
    const etaS = this.done > 0 ? (elapsedS / this.done) * (this.total - this.done) : NaN;
    return { done: this.done, total: this.total, images: this.images, elapsedS, imagesPerS, etaS };
  }

  line(): string {
    const s = this.snapshot();
    const pct = this.total > 0 ? Math.min(1, s.done / this.total) : 1;
    const head = this.label ? `${this.label} ` : '';
    const rate = `${s.imagesPerS.toFixed(s.imagesPerS >= 100 ? 0 : 1)} img/s`;
    const time = s.done >= this.total ? `${formatDuration(s.elapsedS)} total` : `ETA ${formatDuration(s.etaS)}`;
    const extra = this.extra ? `  ${this.extra()}` : '';
    const counts = `${s.done}/${this.total}`;
    if (!this.tty) return `${head}${counts} (${(pct * 100).toFixed(0)}%)  ${rate}  ${time}${extra}`;
    const width = 24;
    const fill = Math.round(pct * width);
    return `${head}[${'#'.repeat(fill)}${'-'.repeat(width - fill)}] ${counts}  ${rate}  ${time}${extra}`;
  }

  private draw(final: boolean): void {
    if (this.tty) {
      let l = this.line();
      const cols = this.stream.columns;
      if (cols && l.length > cols - 1) l = l.slice(0, cols - 1);
      this.stream.write(`\r${l}\x1b[K${final ? '\n' : ''}`);
    } else {
      this.stream.write(`${this.line()}\n`);
    }
  }

  /** Draws the final state (once). */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.draw(true);
  }
}
