// The report layer: `freeadv report` (HTML page of runs) and the analyses it shows.
export { buildReport, computeAnalyses, computeRobustnessCurve, REPORT_DEFAULTS, type ReportOptions, type ReportResult, type ReportRun, type Analyses, type RobustnessCurve } from './report.js';
export { inputGradient, saliency, surfaceDirections, surfaceAxis, surfaceRng, lossSurface, adversarialGallery, targetedAttack, predict, lossAt, type LossSurface, type SurfaceOptions, type TargetedOptions, type AdversarialGallery } from './analysis.js';
export { readRun, loadRunModel, runTestData, ReportError, type RunInfo, type MetricLine } from './run.js';
export { renderHtml, methodLabel } from './html.js';
export { pngDataUris, pngBuffers, pngLevels, epsLevels, quantizeInBall } from './png.js';
export { CACHE_FILE, CACHE_LOCK, cacheKey, cacheGet, cachePut, cacheFind } from './cache.js';
export { REPORT_OPTIONS } from './options.js';
export { html, raw, scriptJson, escapeHtml, Html, GENERATOR } from './markup.js';
