// freeadv's typed API: the tensor engine, layers and models, optimisers, data, checkpoints, attacks,
// evaluation and training. All calls must come from the main JavaScript thread.
export * as torch from './torch/index.js';
export { Tensor, scope, keep, noGrad, manualSeed, setNumThreads, TorchError } from './torch/index.js';
export * as nn from './nn/index.js';
export { createModel, modelFor, modelNames, checkModel, describeModels, SmallCNN, MadryCNN, PreActResNet18, WideResNet, ResNetCifarSmall, ResNet50, type ModelOptions } from './models/index.js';
export { SGD, GradScaler, makeSchedule, type SGDOptions, type GradScalerOptions, type Schedule } from './optim/index.js';
export * as data from './data/index.js';
export { toTensors } from './data/tensor.js';
export * as io from './io/index.js';
export { saveSafetensors, loadSafetensors, saveCheckpoint, loadCheckpoint, CheckpointError } from './io/index.js';
export * as attacks from './attacks/index.js';
export { FGSM, PGD, APGD, Linf, L2, makeAttack } from './attacks/index.js';
export { evaluate, evaluateDataset, type EvalResult } from './eval/index.js';
export { train, resolveConfig, methods, free, pgd, fgsm, natural, type TrainConfig, type Summary, type Method } from './train/index.js';
export * as options from './options/index.js';
export * as report from './report/index.js';
export { buildReport, lossSurface, saliency, inputGradient, targetedAttack, type ReportOptions } from './report/index.js';
