// The page of `freeadv demo`: runs the exported models (robust.onnx, and natural.onnx when there is one) with ONNX
// Runtime Web's WebAssembly backend on the stored test images and their adversarial examples (manifest.json), and on
// any image the visitor uploads or picks; shows each model's top 3 classes. Everything from the folder (class names
// come from a run folder) is put on the page as text (textContent, never as HTML).
import * as ort from './ort/ort.wasm.bundle.min.mjs';

ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = new URL('./ort/', import.meta.url).href;

const ROLE = { robust: 'the robust model', natural: 'the natural model' };
const state = { manifest: undefined, sessions: new Map(), images: [], upload: undefined, uploads: 0 };
/** What the page computed, for tests and curious visitors. */
window.freeadvDemo = state;

const $ = (id) => document.getElementById(id);
/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, String(v));
  }
  e.append(...children.filter((c) => c !== undefined && c !== null));
  return e;
}
const pct = (p) => `${(100 * p).toFixed(1)}%`;
const className = (i) => state.manifest.classNames[i] ?? String(i);

function softmax(logits) {
  const m = Math.max(...logits);
  const e = logits.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}
const topK = (probs, k) => probs.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, k).map(([p, i]) => ({ index: i, probability: p }));

function loadImage(src) {
  const img = new Image();
  img.src = src;
  return img.decode().then(() => img);
}

/**
 * The model input of an image: C×H×W floats in [0, 1]. With `resize`, the short side is scaled to it and the centre
 * H×W cropped (the data set's eval transform); grey for 1-channel models with PIL's luma weights, as freeadv predict.
 */
function inputOf(img, resize) {
  const [c, h, w] = state.manifest.inputShape;
  const canvas = el('canvas', { width: w, height: h });
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (resize) {
    const s = resize / Math.min(img.naturalWidth, img.naturalHeight);
    const dw = img.naturalWidth * s, dh = img.naturalHeight * s;
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(img, (w - dw) / 2, (h - dh) / 2, dw, dh);
  } else ctx.drawImage(img, 0, 0);
  const rgba = ctx.getImageData(0, 0, w, h).data;
  const x = new Float32Array(c * h * w);
  for (let i = 0; i < h * w; i++) {
    const [r, g, b] = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]];
    if (c === 1) x[i] = Math.round((299 * r + 587 * g + 114 * b) / 1000) / 255;
    else for (let k = 0; k < 3; k++) x[k * h * w + i] = rgba[4 * i + k] / 255;
  }
  return { x, canvas };
}

/** Each model's logits on a batch of n inputs: { id: [[…], …] }. */
async function classify(x, n) {
  const [c, h, w] = state.manifest.inputShape;
  const out = {};
  for (const [id, session] of state.sessions) {
    const r = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, [n, c, h, w]) });
    const data = r[session.outputNames[0]].data;
    const k = data.length / n;
    out[id] = Array.from({ length: n }, (_, i) => Array.from(data.subarray(i * k, (i + 1) * k)));
  }
  return out;
}

/**
 * One model's top 3 on an image, the truth marked when known. On an adversarial example crafted against the model:
 * whether it resists or is fooled (unless it was wrong on the clean image already).
 */
function predictionList(id, logits, label, against, cleanRight) {
  const probs = softmax(logits);
  const best = topK(probs, 3);
  const right = label === undefined ? undefined : best[0].index === label;
  const own = against === id && cleanRight;
  const verdict = label === undefined ? '' : own ? (right ? 'resists' : 'fooled') : right ? 'right' : against === id ? 'wrong (on the clean image too)' : 'wrong';
  const box = el('div', { class: `pred ${right === undefined ? '' : right ? 'ok' : 'bad'}`, 'data-model': id },
    el('div', { class: 'who' }, `${id}${verdict ? ': ' : ''}`, verdict ? el('b', {}, verdict) : undefined));
  const ol = el('ol');
  for (const t of best) {
    const bar = el('span', { class: 'bar' });
    bar.style.width = pct(t.probability);
    ol.append(el('li', { class: t.index === label ? 'truth' : '' }, el('span', { class: 'name' }, className(t.index)), el('span', { class: 'p' }, pct(t.probability)), bar));
  }
  box.append(ol);
  return box;
}

function imageCaption(im) {
  return im.kind === 'clean' ? 'clean' : `${state.manifest.attack} against ${ROLE[im.against]}`;
}

function renderModels() {
  const m = state.manifest;
  for (const d of m.models) {
    const lines = [`${d.method} training · ${d.model} · ${m.dataset}`];
    if (d.cleanAccuracy !== undefined) lines.push(`clean accuracy ${pct(d.cleanAccuracy)} on ${d.evalExamples} test images`);
    if (d.robustAccuracy !== undefined) lines.push(`robust accuracy ${pct(d.robustAccuracy)} (${d.robustAttack}, ε = ${m.epsText})`);
    $('model-cards').append(el('div', { class: `card ${d.id}` }, el('h3', {}, `${d.id}: ${d.label ?? d.run}`), el('div', { class: 'run' }, `run ${d.run}`), ...lines.map((l) => el('div', {}, l))));
  }
}

function renderExamples() {
  const m = state.manifest;
  const byIndex = new Map();
  for (const [k, im] of m.images.entries()) byIndex.set(im.index, [...(byIndex.get(im.index) ?? []), k]);
  for (const [index, ks] of byIndex) {
    const label = m.images[ks[0]].label;
    const row = el('div', { class: 'row' }, el('div', { class: 'label' }, `test image ${index}`, el('br'), 'true class: ', el('b', {}, className(label))));
    for (const k of ks) {
      const im = m.images[k];
      const cell = el('figure', { class: `cell ${im.kind}`, 'data-file': im.file }, el('img', { src: im.file, alt: `${imageCaption(im)}, test image ${index}` }), el('figcaption', {}, imageCaption(im)));
      const clean = ks.find((j) => m.images[j].kind === 'clean');
      for (const id of state.sessions.keys()) cell.append(predictionList(id, state.images[k].logits[id], label, im.against, state.images[clean]?.predicted[id] === label));
      row.append(cell);
    }
    $('example-rows').append(row);
  }
  const tally = [];
  for (const id of state.sessions.keys()) {
    const own = m.images.map((im, k) => [im, k]).filter(([im]) => im.against === id);
    const clean = m.images.map((im, k) => [im, k]).filter(([im]) => im.kind === 'clean');
    const right = (list) => list.filter(([im, k]) => state.images[k].predicted[id] === im.label).length;
    tally.push(`${ROLE[id]}: ${right(clean)} of ${clean.length} clean images right, ${right(own)} of ${own.length} of its own adversarial examples right`);
  }
  $('tally').textContent = `In this browser, ${tally.join('; ')}.`;
}

/** Shows the models' predictions on one image (uploaded or picked) in the "Try an image" panel. */
async function tryImage(img, name, resize, label) {
  const { x, canvas } = inputOf(img, resize);
  const logits = await classify(x, 1);
  const box = $('try-result');
  box.replaceChildren();
  canvas.className = 'seen';
  box.append(el('figure', { class: 'cell' }, canvas, el('figcaption', {}, name)));
  for (const id of state.sessions.keys()) box.append(predictionList(id, logits[id][0], label));
  return Object.fromEntries(Object.entries(logits).map(([id, l]) => [id, l[0]]));
}

async function main() {
  if (location.protocol === 'file:') throw new Error('this page must be served over http (see above): browsers refuse WebAssembly and modules from file://');
  const m = await (await fetch('manifest.json')).json();
  if (m.format !== 'freeadv-demo') throw new Error('manifest.json is not a freeadv demo manifest');
  state.manifest = m;
  $('status').textContent = `Loading ${m.models.length} model(s) with ONNX Runtime Web ${m.onnxruntimeWeb} (WebAssembly)…`;
  for (const d of m.models) state.sessions.set(d.id, await ort.InferenceSession.create(d.file, { executionProviders: ['wasm'] }));
  renderModels();
  const [c, h, w] = m.inputShape;
  if (c === 1) $('grey-note').textContent = `, ${w}×${h} grey`;
  else $('grey-note').textContent = `, ${w}×${h}`;
  $('attack-note').textContent = `The first ${m.images.filter((i) => i.kind === 'clean').length} test images of ${m.dataset}, and their adversarial examples: ` +
    `${m.attack} (L∞, ε = ${m.epsText}) computed by freeadv against each model, white-box, and stored as 8-bit PNG inside the ε-ball. ` +
    'Every model is shown on every image; the verdict on an adversarial example crafted against a model says whether it fooled that model.';

  // the stored images, in one batch per model
  const imgs = await Promise.all(m.images.map((im) => loadImage(im.file)));
  const per = c * h * w;
  const x = new Float32Array(imgs.length * per);
  imgs.forEach((img, k) => x.set(inputOf(img).x, k * per));
  const logits = await classify(x, imgs.length);
  state.images = m.images.map((im, k) => {
    const l = Object.fromEntries([...state.sessions.keys()].map((id) => [id, logits[id][k]]));
    return {
      file: im.file, logits: l,
      probabilities: Object.fromEntries(Object.entries(l).map(([id, v]) => [id, softmax(v)])),
      predicted: Object.fromEntries(Object.entries(l).map(([id, v]) => [id, topK(softmax(v), 1)[0].index])),
    };
  });
  renderExamples();

  const pick = $('pick');
  pick.append(el('option', { value: '' }, '—'));
  for (const [k, im] of m.images.entries()) pick.append(el('option', { value: k }, `test image ${im.index} (${className(im.label)}), ${imageCaption(im)}`));
  pick.addEventListener('change', async () => {
    if (pick.value === '') return;
    const im = m.images[Number(pick.value)];
    await tryImage(imgs[Number(pick.value)], `${imageCaption(im)}, test image ${im.index}`, undefined, im.label);
  });
  $('upload').addEventListener('change', async (ev) => {
    const file = ev.target.files[0];
    if (!file) return;
    const url = URL.createObjectURL(file);
    try {
      const img = await loadImage(url);
      const l = await tryImage(img, file.name, m.resize);
      state.upload = { name: file.name, logits: l, probabilities: Object.fromEntries(Object.entries(l).map(([id, v]) => [id, softmax(v)])) };
      document.documentElement.dataset.uploads = String(++state.uploads);
    } catch (e) {
      $('try-result').replaceChildren(el('p', { class: 'error' }, `${file.name}: cannot classify it (${e.message})`));
    } finally {
      URL.revokeObjectURL(url);
    }
  });
  $('status').textContent = `Ready: ${m.models.length} model(s) run by ONNX Runtime Web ${m.onnxruntimeWeb} in this browser.`;
  document.documentElement.dataset.ready = '1';
}

main().catch((e) => {
  $('status').textContent = `Error: ${e.message}`;
  $('status').className = 'error';
  document.documentElement.dataset.error = e.message;
  console.error(e);
});
