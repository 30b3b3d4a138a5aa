export { CheckpointError, encodeSafetensors, decodeSafetensors, saveSafetensors, loadSafetensors, readSafetensorsHeader, type Header, type TensorInfo } from './safetensors.js';
export { writeFileAtomic, writeJsonAtomic, WriteError, setBeforeWriteHook } from './atomic.js';
export { saveCheckpoint, loadCheckpoint, CHECKPOINT_FORMAT, type Checkpoint } from './checkpoint.js';
