export { SGD, type SGDOptions } from './sgd.js';
export { makeSchedule, type Schedule, type ScheduleName, type ScheduleOptions } from './schedule.js';
