// The one runner: every engine × every backend, each behaviour suite declared inside.
//
// A suite is a function (engine, backend) => void that declares its `it`s for that pair and
// nothing where it does not apply (vitest fails a `describe` left empty, so a suite opens one
// only around tests it declares) (object_store's `put_get_delete_list(storage)`, OpenDAL's
// bindings/nodejs/tests/suites). The runner owns what every suite needs around it: the servers'
// backends, OBJGET_ENGINE set before each test and restored when the file ends.
import { afterAll, beforeEach, describe } from 'vitest';
import { backends, useEngine, type Backend } from './servers.js';

export const ENGINES = ['native', 'js'] as const;
export type EngineName = (typeof ENGINES)[number];

/** Declares the tests of one behaviour for one engine on one backend. */
export type Suite = (engine: EngineName, backend: Backend) => void;
/** Declares tests that reach no backend (arguments refused before any request). */
export type EngineSuite = (engine: EngineName) => void;

function restoreEngineAfterAll(): void {
  const previous = process.env.OBJGET_ENGINE;
  afterAll(() => {
    if (previous === undefined) delete process.env.OBJGET_ENGINE;
    else process.env.OBJGET_ENGINE = previous;
  });
}

/** Runs every suite for every engine × backend, then every engine-only suite for each engine. */
export function forEachEngineAndBackend(suites: Suite[], engineSuites: EngineSuite[] = []): void {
  restoreEngineAfterAll();
  for (const engine of ENGINES) {
    for (const backend of backends()) {
      describe(`${engine} engine × ${backend.name}`, () => {
        beforeEach(() => useEngine(engine));
        for (const suite of suites) suite(engine, backend);
      });
    }
    describe(`${engine} engine, no backend`, () => {
      beforeEach(() => useEngine(engine));
      for (const suite of engineSuites) suite(engine);
    });
  }
}
