// Models that leave freeadv: a run's or a weights file's model as a plain PyTorch state dict (safetensors) or an
// ONNX graph, with metadata; and predictions on image files.
export { openModel, describeDataset, exportMetadata, headlineRobust, type ModelInfo, type ModelSource } from './source.js';
export { exportSafetensors } from './safetensors.js';
export { exportOnnx, registerOnnxEmitter, emit, OnnxGraph, OnnxExportError, attr, type Emitter, type OnnxExportOptions } from './onnx.js';
export { onnxSchema, ONNX_SCHEMA, ONNX_IR_VERSION, ONNX_OPSET } from './onnx-schema.js';
export { freeadvVersion } from './version.js';
export {
  predictImages, listImages, loadImage, inputTransform, softmaxRows, topK, torchClassifier, onnxClassifier, readOnnxInfo,
  type InputTransform, type Prediction, type ImagePrediction, type Classifier, type OnnxInfo,
} from './predict.js';
