// Models that leave freeadv: a run's or a weights file's model as a plain PyTorch state dict (safetensors) or an
// ONNX graph, with metadata; predictions on image files; and a browser page that runs them (freeadv demo).
export { openModel, describeDataset, exportMetadata, headlineRobust, describeModelInfo, type ModelInfo, type ModelSource } from './source.js';
export { exportSafetensors } from './safetensors.js';
export { exportOnnx, exportModelOnnx, registerOnnxEmitter, emit, OnnxGraph, OnnxExportError, attr, type Emitter, type OnnxExportOptions } from './onnx.js';
export { onnxSchema, ONNX_SCHEMA, ONNX_IR_VERSION, ONNX_OPSET } from './onnx-schema.js';
export { freeadvVersion } from './version.js';
export {
  predictImages, listImages, loadImage, inputTransform, softmaxRows, topK, torchClassifier, onnxClassifier, readOnnxInfo,
  type InputTransform, type Prediction, type ImagePrediction, type Classifier, type OnnxInfo,
} from './predict.js';
export {
  buildDemo, serveDemo, checkDemoOut, onnxruntimeWeb, DEMO_DEFAULTS, DEMO_MANIFEST, DEMO_FORMAT, DEMO_PAGE_FILES, ORT_FILES,
  type DemoOptions, type DemoResult, type DemoManifest, type DemoModel, type DemoImage,
} from './demo.js';
