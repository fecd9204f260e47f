// The read behaviour suites (test/suites/), run by the one runner for every engine × backend.
// The suites are split over a few files only so that vitest runs them side by side.
import { forEachEngineAndBackend } from './helpers/matrix.js';
import { badInput, reads } from './suites/download.js';
import { integrity } from './suites/integrity.js';
import { parity } from './suites/parity.js';

forEachEngineAndBackend([reads, parity, integrity], [badInput]);
