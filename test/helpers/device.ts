// The device the device-relevant tests run on: FREEADV_TEST_DEVICE=cuda (or cuda:N) runs them on a GPU, with the
// addon built against a CUDA libtorch (FREEADV_ADDON=…); unset, they run on the CPU as always. Where a GPU was
// asked for but this process cannot use one, those tests are skipped, saying why (node:test's skip reason).
import { cuda } from '../../src/torch/index.js';

export const TEST_DEVICE = process.env.FREEADV_TEST_DEVICE || 'cpu';

const problem = TEST_DEVICE === 'cpu' ? undefined : /^cuda(:\d+)?$/.test(TEST_DEVICE) ? cuda.problem(TEST_DEVICE) : `expected cpu, cuda or cuda:N`;

/** node:test's `skip` option for a device-relevant test: false (run it), or why it cannot run here. */
export const deviceSkip: string | false = problem ? `FREEADV_TEST_DEVICE=${TEST_DEVICE}: ${problem}` : false;

/** For tests that only add something on a GPU (their CPU case is covered elsewhere): skipped unless one is in use. */
export const gpuOnlySkip: string | false = TEST_DEVICE === 'cpu' ? 'runs with FREEADV_TEST_DEVICE=cuda on a GPU machine (the CPU case is covered by the other tests)' : deviceSkip;
