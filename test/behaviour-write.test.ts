// The write, listing and prefix behaviour suites (test/suites/), run by the one runner for every
// engine × backend.
import { forEachEngineAndBackend } from './helpers/matrix.js';
import { hardeningOps, wrongTypedArguments } from './suites/hardening-ops.js';
import { ops } from './suites/ops.js';
import { prefix } from './suites/prefix.js';

forEachEngineAndBackend([ops, prefix, hardeningOps], [wrongTypedArguments]);
