// The behaviour suites (test/suites/), run by the one runner for every engine × backend.
import { forEachEngineAndBackend } from './helpers/matrix.js';
import { badInput, reads } from './suites/download.js';
import { hardeningOps, wrongTypedArguments } from './suites/hardening-ops.js';
import { integrity } from './suites/integrity.js';
import { ops } from './suites/ops.js';
import { parity } from './suites/parity.js';
import { prefix } from './suites/prefix.js';
import { transfer } from './suites/transfer.js';

forEachEngineAndBackend(
  [reads, parity, transfer, integrity, ops, prefix, hardeningOps],
  [badInput, wrongTypedArguments],
);
