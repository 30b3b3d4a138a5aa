export {
  CheckpointError, encodeSafetensors, encodeSafetensorsChunks, decodeSafetensors, saveSafetensors, loadSafetensors, readSafetensorsHeader,
  parseHeader, findDuplicateKey, MAX_HEADER_BYTES, type Header, type TensorInfo, type SafetensorsContents,
} from './safetensors.js';
export { writeFileAtomic, writeJsonAtomic, appendLine, appendAll, WriteError, setBeforeWriteHook, tempPathFor, type WriteStage } from './atomic.js';
export { saveCheckpoint, loadCheckpoint, disposeCheckpoint, readModelWeights, loadWeights, checkWeights, CHECKPOINT_FORMAT, STATE_KEY, type Checkpoint, type CheckpointContents } from './checkpoint.js';
export { TensorBoardWriter, appendTensorBoard, metricScalars, tfRecord, validRecordsLength, crc32c, maskedCrc32c, TENSORBOARD_FILE, EVENT_SCHEMA } from './tensorboard.js';
