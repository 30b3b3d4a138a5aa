// The training methods by name: the command line's choices, their help and validation come from this list.
import type { Method } from './method.js';
import { natural } from './natural.js';
import { free } from './free.js';
import { pgd } from './pgd.js';
import { fgsm } from './fgsm.js';

export const methods: Record<string, Method> = { free, pgd, fgsm, natural };
