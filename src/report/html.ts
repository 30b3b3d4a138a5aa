// The report page: one self-contained HTML file (works offline, opened from disk). Charts are drawn in the
// browser by Chart.js (and its matrix chart type for heatmaps), whose UMD bundles are inlined from
// node_modules; images are PNG data: URIs; the numbers the charts draw are embedded as JSON.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { formatEps } from '../options/index.js';
import { methods } from '../train/index.js';
import type { ReportRun } from './report.js';
import { html, raw, scriptJson, GENERATOR, type Html } from './markup.js';
import { perturbationLevels } from './png.js';

const require = createRequire(import.meta.url);

/** A library's browser bundle (a file beside its package entry) and its version. */
function bundle(pkg: string, file: string): { code: string; version: string } {
  const dist = dirname(require.resolve(pkg));
  const code = readFileSync(join(dist, file), 'utf8').replace(/<\/script/gi, '<\\/script');
  const version = (JSON.parse(readFileSync(join(dist, '..', 'package.json'), 'utf8')) as { version: string }).version;
  return { code, version };
}

const pct = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '—' : `${(v * 100).toFixed(2)}%`);

export function methodLabel(r: Pick<ReportRun, 'config'>): string {
  return methods[r.config.method]?.title(r.config) ?? r.config.method;
}

const swatch = (i: number) => html`<span class="swatch" style="background:${color(i)}"></span>`;

/** The comparison table, shaped like the paper's Table 1. */
function runsTable(runs: ReportRun[]): Html {
  const attacks = [...new Set(runs.flatMap((r) => Object.keys(r.summary?.robust_accuracy ?? {}).filter((k) => k !== 'worst_case')))];
  const head = ['Run', 'Method', 'm', 'ε', 'Model', 'Data', 'Clean', ...attacks, 'Worst case', 'Training time', 'Backward passes', 'SGD steps', 'Test images'];
  const rows = runs.map((r, i) => {
    const s = r.summary;
    const cells: unknown[] = [
      html`${swatch(i)}${r.name}`,
      methodLabel(r),
      s ? s.replays : (methods[r.config.method]?.stepsPerBatch(r.config) ?? '—'),
      formatEps(r.config.eps),
      r.config.model,
      r.config.dataset,
      pct(s?.clean_accuracy),
      ...attacks.map((a) => pct(s?.robust_accuracy[a])),
      pct(s?.robust_accuracy.worst_case),
      s ? `${(s.train_seconds / 60).toFixed(2)} min` : '—',
      s ? s.backward_passes : '—',
      s ? s.sgd_steps : '—',
      s ? s.eval_examples : '—',
    ];
    return html`<tr>${cells.map((c) => html`<td>${c}</td>`)}</tr>`;
  });
  const note = runs.some((r) => !r.summary) ? html`<p class="note">— : the run has no summary.json yet (unfinished or interrupted).</p>` : '';
  // what the runs' summaries say besides numbers: warnings of their evaluation, an early stop
  const notes = runs.flatMap((r, i) => [...(r.summary?.warnings ?? []), ...(r.summary?.stopped_early ? [r.summary.stopped_early] : [])].map((w) => html`<li>${swatch(i)}${r.name}: ${w}</li>`));
  return html`<table class="runs"><thead><tr>${head.map((h) => html`<th>${h}</th>`)}</tr></thead><tbody>${rows}</tbody></table>${note}${notes.length ? html`<ul class="run-notes">${notes}</ul>` : ''}`;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const color = (i: number) => PALETTE[i % PALETTE.length]!;

const img = (src: string, alt: string) => html`<img class="px" src="${src}" alt="${alt}" width="84" height="84">`;

interface GridRow {
  head: Html;
  cells: { src: string; alt: string; caption: Html | string }[];
}

function imageGrid(rows: GridRow[], n: number): Html {
  const th = html`<tr><th></th>${Array.from({ length: n }, (_, i) => html`<th>test image ${i}</th>`)}</tr>`;
  const tr = rows.map((r) => html`<tr><th class="rowhead">${r.head}</th>${r.cells.map((c) => html`<td>${img(c.src, c.alt)}<div class="cap">${c.caption}</div></td>`)}</tr>`);
  return html`<table class="grid">${th}${tr}</table>`;
}

function runHeading(r: ReportRun, i: number): Html {
  return html`<h3>${swatch(i)}${r.name} <small>${methodLabel(r)}, ε = ${formatEps(r.config.eps)}, ${r.config.model}</small></h3>`;
}

const mark = (ok: boolean) => (ok ? html`<span class="ok">✓</span>` : html`<span class="bad">✗</span>`);
const NBSP = raw('&nbsp;');

function gallery(runs: ReportRun[]): Html[] {
  return runs.map((r, i) => {
    const a = r.analyses;
    const name = (k: number) => a.classNames[k] ?? String(k);
    const e = perturbationLevels(a.eps); // what the perturbation image spans (analysis.ts adversarialGallery)
    return html`${runHeading(r, i)}${imageGrid(
      [
        { head: html`clean`, cells: a.images.clean.map((src, k) => ({ src, alt: `clean ${k}`, caption: html`label ${name(a.labels[k]!)}<br>pred ${name(a.cleanPred[k]!)} ${mark(a.cleanPred[k] === a.labels[k])}` })) },
        { head: html`adversarial<br><small>${a.attack}, L∞ ε = ${formatEps(a.eps)}</small>`, cells: a.images.adversarial.map((src, k) => ({ src, alt: `adversarial ${k}`, caption: html`pred ${name(a.advPred[k]!)} ${mark(a.advPred[k] === a.labels[k])}` })) },
        { head: html`perturbation<br><small>adversarial − clean, amplified: −${e}/255 black, 0 grey, +${e}/255 white</small>`, cells: a.images.perturbation.map((src, k) => ({ src, alt: `perturbation ${k}`, caption: a.cleanPred[k] === a.labels[k] ? NBSP : html`none needed:<br>already wrong` })) },
      ],
      a.labels.length,
    )}`;
  });
}

function saliencySection(runs: ReportRun[]): Html[] {
  return runs.map((r, i) => {
    const a = r.analyses;
    return html`${runHeading(r, i)}${imageGrid(
      [
        { head: html`image`, cells: a.images.clean.map((src, k) => ({ src, alt: `image ${k}`, caption: a.classNames[a.labels[k]!] ?? '' })) },
        { head: html`saliency ∇ₓ loss<br><small>per image: largest |∇| white/black, 0 grey</small>`, cells: a.images.saliency.map((src, k) => ({ src, alt: `saliency ${k}`, caption: NBSP })) },
      ],
      a.labels.length,
    )}`;
  });
}

function targetedSection(runs: ReportRun[]): Html[] {
  return runs.map((r, i) => {
    const a = r.analyses;
    const name = (k: number) => a.classNames[k] ?? String(k);
    const radius = a.targetNorm === 'l2' ? `L2 ε = ${a.targetEps.toFixed(3)}` : `L∞ ε = ${formatEps(a.targetEps)}`;
    return html`${runHeading(r, i)}${imageGrid(
      [
        { head: html`image`, cells: a.images.clean.map((src, k) => ({ src, alt: `image ${k}`, caption: name(a.labels[k]!) })) },
        {
          head: html`→ target class<br><small>targeted PGD, ${radius}</small>`,
          cells: a.images.targeted.map((src, k) => ({ src, alt: `targeted ${k}`, caption: html`target ${name(a.targets[k]!)}<br>pred ${name(a.targetPred[k]!)} ${mark(a.targetPred[k] === a.targets[k])}` })),
        },
      ],
      a.labels.length,
    )}`;
  });
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1280px;padding:16px 24px;color:#222}
h1{font-size:24px;margin:0 0 4px} h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px} h3{font-size:15px;margin:16px 0 6px}
h3 small,.meta{color:#666;font-weight:normal} .note{color:#666;font-style:italic}
table.runs{border-collapse:collapse;font-size:13px} table.runs td,table.runs th{border:1px solid #ddd;padding:3px 8px;text-align:right} table.runs td:first-child,table.runs th:first-child{text-align:left}
table.runs th{background:#f5f5f5}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:12px}
.chart{position:relative;height:260px;border:1px solid #eee;border-radius:4px;padding:4px}
.heatmaps{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:8px}
.heatmaps .chart{height:210px}
table.grid{border-collapse:collapse} table.grid td{text-align:center;padding:2px 6px;font-size:11px;vertical-align:top}
table.grid th{font-size:11px;font-weight:normal;color:#666} th.rowhead{text-align:right;padding-right:8px;color:#222;font-weight:600}
img.px{image-rendering:pixelated;display:block;margin:0 auto;border:1px solid #ccc}
.cap{min-height:2.4em} .ok{color:#2ca02c} .bad{color:#d62728}
code{background:#f3f3f3;padding:1px 4px;border-radius:3px}
`;

/** The browser side: draws every chart from the embedded data. */
const CHART_SCRIPT = `
(function () {
  var D = JSON.parse(document.getElementById('report-data').textContent);
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.size = 11;
  var drawn = 0;
  function fmt(v) { return Math.abs(v) < 1e-12 ? '0' : (Math.abs(v) >= 100 ? v.toFixed(0) : Number(v.toPrecision(3)).toString()); }
  function line(id, title, xTitle, yTitle, series, yOpts) {
    var el = document.getElementById(id);
    new Chart(el, {
      type: 'line',
      data: { datasets: series.map(function (s) {
        return { label: s.label, data: s.points, borderColor: s.color, backgroundColor: s.color, borderDash: s.dash || [],
                 pointRadius: s.points.length > 30 ? 0 : 2.5, borderWidth: 1.6, tension: 0 };
      }) },
      options: {
        scales: { x: { type: 'linear', title: { display: true, text: xTitle } }, y: Object.assign({ title: { display: true, text: yTitle } }, yOpts || {}) },
        plugins: { title: { display: true, text: title }, legend: { position: 'bottom', labels: { boxWidth: 12 } } }
      }
    });
    drawn++;
  }
  var runs = D.runs;
  function series(key, scale, fallback) {
    return runs.map(function (r) {
      var k = fallback && !r.metrics.some(function (m) { return typeof m[key] === 'number'; }) ? fallback : key;
      return { label: r.label, color: r.color, points: r.metrics.filter(function (m) { return typeof m[k] === 'number'; })
        .map(function (m) { return { x: m.step, y: m[k] * (scale || 1) }; }) };
    });
  }
  line('chart-loss', 'Training loss (on the inputs trained on)', 'SGD step', 'cross-entropy', series('loss'));
  line('chart-train-acc', 'Accuracy on perturbed training inputs', 'SGD step', 'accuracy (%)', series('train_accuracy', 100));
  line('chart-lr', 'Learning rate', 'SGD step', 'lr', series('lr'));
  line('chart-ips', 'Throughput', 'SGD step', 'images / s', series('images_per_second'), { beginAtZero: true });
  // runs from before the validation split have the guard's accuracy on 512 training images instead
  line('chart-val', 'Validation PGD-10 accuracy after each pass', 'SGD step', 'accuracy (%)', series('val_robust_accuracy', 100, 'guard_robust_accuracy'), { beginAtZero: true });

  var withCurve = runs.filter(function (r) { return r.curve; });
  if (withCurve.length) line('chart-robustness', 'Accuracy under PGD as ε grows', 'ε (pixel units, L∞)', 'accuracy (%)', withCurve.map(function (r) {
    return { label: r.label + ' (' + r.curve.attack + ', ' + r.curve.examples + ' images)', color: r.color,
             points: r.curve.eps.map(function (e, i) { return { x: e, y: r.curve.accuracy[i] * 100 }; }) };
  }), { min: 0, max: 100 });

  function meanAlong(s, adversarial) {
    var P = s.a.length, mid = (P - 1) / 2, K = s.loss.length, pts = [];
    for (var i = 0; i < P; i++) {
      var t = 0;
      for (var k = 0; k < K; k++) t += adversarial ? s.loss[k][i][mid] : s.loss[k][mid][i];
      pts.push({ x: adversarial ? s.a[i] : s.b[i], y: t / K });
    }
    return pts;
  }
  line('chart-surface-adv', 'Loss along the adversarial direction sign(∇ₓ loss)', 'a (pixel units)', 'mean loss over the test images',
       runs.map(function (r) { return { label: r.label, color: r.color, points: meanAlong(r.surface, true) }; }));
  line('chart-surface-rand', 'Loss along a random sign direction', 'b (pixel units)', 'mean loss over the test images',
       runs.map(function (r) { return { label: r.label, color: r.color, dash: [5, 3], points: meanAlong(r.surface, false) }; }));

  var LOW = '#313695', MID = '#ffffbf', HIGH = '#a50026';
  function heatColor(t) {
    var c = Chart.helpers.color;
    t = Math.max(0, Math.min(1, t));
    return t < 0.5 ? c(MID).mix(c(LOW), t * 2).hexString() : c(HIGH).mix(c(MID), (t - 0.5) * 2).hexString();
  }
  runs.forEach(function (r, ri) {
    var s = r.surface, P = s.a.length, lo = Infinity, hi = -Infinity;
    s.loss.forEach(function (g) { g.forEach(function (row) { row.forEach(function (v) { lo = Math.min(lo, v); hi = Math.max(hi, v); }); }); });
    var xl = s.a.map(fmt), yl = s.b.map(fmt);
    s.loss.forEach(function (g, k) {
      var data = [];
      for (var i = 0; i < P; i++) for (var j = 0; j < P; j++) data.push({ x: xl[i], y: yl[j], v: g[i][j] });
      new Chart(document.getElementById('heat-' + ri + '-' + k), {
        type: 'matrix',
        data: { datasets: [{ data: data, borderWidth: 0,
          backgroundColor: function (ctx) { var v = ctx.raw && ctx.raw.v; return heatColor(hi > lo ? (v - lo) / (hi - lo) : 0); },
          width: function (ctx) { var a = ctx.chart.chartArea; return a ? a.width / P : 0; },
          height: function (ctx) { var a = ctx.chart.chartArea; return a ? a.height / P : 0; } }] },
        options: {
          plugins: { legend: { display: false }, title: { display: true, text: 'test image ' + k + ' (loss ' + fmt(lo) + '–' + fmt(hi) + ')' },
            tooltip: { callbacks: { title: function () { return ''; }, label: function (c) { return 'a=' + c.raw.x + ', b=' + c.raw.y + ': loss ' + c.raw.v.toFixed(3); } } } },
          scales: {
            x: { type: 'category', labels: xl, offset: true, grid: { display: false }, title: { display: true, text: 'a: adversarial' }, ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 5 } },
            y: { type: 'category', labels: yl, offset: true, reverse: true, grid: { display: false }, title: { display: true, text: 'b: random' }, ticks: { autoSkip: true, maxTicksLimit: 5 } }
          }
        }
      });
      drawn++;
    });
  });
  document.documentElement.setAttribute('data-charts', String(drawn));
  document.documentElement.setAttribute('data-ready', '1');
})();
`;

export interface HtmlOptions {
  title?: string;
  /** Show how to compute robustness curves (none of the runs has one). */
  robustnessHint?: boolean;
}

/** The whole page. */
export function renderHtml(runs: ReportRun[], o: HtmlOptions = {}): string {
  const chart = bundle('chart.js', 'chart.umd.min.js');
  const matrix = bundle('chartjs-chart-matrix', 'chartjs-chart-matrix.min.js');
  const title = o.title ?? `freeadv report: ${runs.map((r) => r.name).join(', ')}`;
  const data = {
    runs: runs.map((r, i) => ({
      label: `${r.name} (${methodLabel(r)})`,
      color: color(i),
      metrics: r.metrics,
      curve: r.curve ?? null,
      surface: r.analyses.surface,
    })),
  };
  const canvas = (id: string, label: string) => html`<div class="chart"><canvas id="${id}" class="report-chart" role="img" aria-label="${label}"></canvas></div>`;
  const missing = runs.filter((r) => !r.curve);
  const robustness = missing.length === runs.length
    ? html`<p class="note" id="robustness-missing">No robustness curve yet: run <code>freeadv report --robustness-curve ${runs.map((r) => r.name).join(' ')}</code> (computed once, then cached in each run folder).</p>`
    : html`<div class="charts">${canvas('chart-robustness', 'accuracy under PGD as ε grows')}</div>${missing.length ? html`<p class="note">No curve yet for ${missing.map((r) => r.name).join(', ')} (use --robustness-curve).</p>` : ''}`;
  const k = runs[0]?.analyses.labels.length ?? 0;
  const heatmaps = runs.map((r, ri) => html`${runHeading(r, ri)}<div class="heatmaps">${r.analyses.surface.loss.map((_, kk) => canvas(`heat-${ri}-${kk}`, `loss surface of test image ${kk}, ${r.name}`))}</div>`);
  const a0 = runs[0]?.analyses;
  const R = a0 && a0.eps > 0 ? Number((Math.max(...a0.surface.a) / a0.eps).toPrecision(3)) : 2;
  const weights = runs.map((r) => r.checkpoint.replace(/^.*[\\/]/, '')).filter((v, i, a) => a.indexOf(v) === i).join('/');
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="${GENERATOR}">
<title>${title}</title>
<style>${raw(CSS)}</style>
<script>${raw(chart.code)}</script>
<script>${raw(matrix.code)}</script>
</head>
<body>
<h1>${title}</h1>
<p class="meta">Generated ${new Date().toISOString().slice(0, 19).replace('T', ' ')} UTC by freeadv from ${runs.length} run folder(s): ${runs.map((r, i) => html`${i ? ', ' : ''}<code>${r.dir}</code>`)}.
Analyses on the first ${k} test images of each run's data set, computed with the run's ${weights} weights.</p>

<section id="runs"><h2>Runs</h2>
<p>Shaped like Table 1 of Shafahi et al. (2019): accuracy on natural test images and under each attack of the run's final evaluation, training time and the number of backward passes (free-<i>m</i> costs what natural training costs).</p>
${runsTable(runs)}
</section>

<section id="training"><h2>Training curves</h2>
<div class="charts">
${canvas('chart-loss', 'training loss')}
${canvas('chart-train-acc', 'accuracy on perturbed training inputs')}
${canvas('chart-lr', 'learning rate')}
${canvas('chart-ips', 'images per second')}
${canvas('chart-val', 'validation PGD-10 accuracy per pass')}
</div>
</section>

<section id="robustness"><h2>Robustness curves</h2>
${robustness}
</section>

<section id="loss-surface"><h2>Loss surface</h2>
<p>The cross-entropy loss L(x + a·g + b·r) around each test image, with g = sign(∇ₓ L) (the adversarial direction) and r a random ±1 direction, for a, b in [−${R}ε, ${R}ε] (ε of each run). Robust models have a flat, nearly linear loss around the data; naturally trained ones are curved and rise steeply along g (as in the loss-surface plots of Shafahi et al., 2019).</p>
<div class="charts">
${canvas('chart-surface-adv', 'loss along the adversarial direction')}
${canvas('chart-surface-rand', 'loss along a random direction')}
</div>
${heatmaps}
</section>

<section id="gallery"><h2>Adversarial gallery</h2>
<p>Clean test images, PGD adversarial examples within the run's L∞ ε-ball, the perturbation (amplified) and the model's predictions.</p>
${gallery(runs)}
</section>

<section id="saliency"><h2>Input-gradient saliency</h2>
<p>The gradient of the loss with respect to the input pixels. For robust models it looks like the image (edges and shapes of the object); for naturally trained models it is noise-like (as observed by Shafahi et al., 2019, for free-trained models).</p>
${saliencySection(runs)}
</section>

<section id="targeted"><h2>Large-ε targeted attacks</h2>
<p>Targeted PGD with a radius several times the training ε, towards the class named under each image. Against robust models the perturbation adds features of the target class (the "generative" behaviour of robust models shown by Shafahi et al., 2019); against natural models it stays noise.</p>
${targetedSection(runs)}
</section>

<p class="meta">Charts: Chart.js ${chart.version} with chartjs-chart-matrix ${matrix.version}, inlined; images: PNG (sharp). This page needs no network.</p>
<script type="application/json" id="report-data">${scriptJson(data)}</script>
<script>${raw(CHART_SCRIPT)}</script>
</body>
</html>
`.text;
}
