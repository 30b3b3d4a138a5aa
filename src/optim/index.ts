export { SGD, type SGDOptions } from './sgd.js';
export { makeSchedule, SCHEDULE_NAMES, type Schedule, type ScheduleName, type ScheduleOptions } from './schedule.js';
export { GradScaler, type GradScalerOptions, type GradScalerState } from './grad-scaler.js';
