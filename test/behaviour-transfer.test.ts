// The transfer behaviour suite (large objects, parts, faults), run by the one runner for every
// engine × backend; in its own file so that vitest runs it beside the others.
import { forEachEngineAndBackend } from './helpers/matrix.js';
import { transfer } from './suites/transfer.js';

forEachEngineAndBackend([transfer]);
