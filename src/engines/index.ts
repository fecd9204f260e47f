// Which engine serves a call, decided here and nowhere else: a registered scheme's handler, else
// the native engine when its addon loaded, else the pure-JS engine (OBJGET_ENGINE forces one).
import { StorageError } from '../errors.js';
import { insecureTlsUsed } from '../tls.js';
import type { Engine, EngineInfo, EngineName } from '../types.js';
import { JS_CAPABILITIES, JS_SCHEMES, jsEngine } from './js/engine.js';
import { loadNative, nativeEngine, rdmaInfo } from './native.js';
import { handlerFor, schemeEngine } from './scheme.js';

let js: Engine | undefined;
let native: Engine | undefined;

function forced(): EngineName | undefined {
  const v = process.env.OBJGET_ENGINE?.trim().toLowerCase();
  if (v === 'js' || v === 'native') return v;
  return undefined;
}

/** Why calls run on the JS engine, for the messages of the calls it cannot serve. */
function whyJs(): string | undefined {
  if (forced() === 'js') return 'OBJGET_ENGINE=js selects the JS engine';
  return loadNative().reason;
}

/**
 * The engine a call on `url` uses: the registered scheme's handler; else native when the addon
 * loaded, else JS. `OBJGET_ENGINE=js|native` forces one of the two; forcing native without the
 * addon makes calls reject with `NotSupported`.
 */
export function engineFor(url: string): Engine {
  if (handlerFor(url)) return schemeEngine;
  const want = forced();
  if (want !== 'js') {
    const n = loadNative();
    if (n.binding) return (native ??= nativeEngine(n.binding));
    if (want === 'native') {
      throw new StorageError('NotSupported', `OBJGET_ENGINE=native, but ${n.reason}`);
    }
  }
  return (js ??= jsEngine(whyJs));
}

/** Whether results of `engine` came over this call's store settings (not a scheme's handler). */
export function usesStore(engine: Engine): boolean {
  return engine !== schemeEngine;
}

/** Which engines are available and which one calls use. Never throws. */
export function engineInfo(): EngineInfo {
  const n = loadNative();
  const want = forced();
  const info = n.binding?.nativeInfo();
  return {
    // What engineFor() does: the forced engine, else native when it loaded.
    engine: want ?? (n.binding ? 'native' : 'js'),
    native: n.binding
      ? {
          loaded: true,
          version: info?.version,
          objectStoreVersion: info?.objectStoreVersion,
          tls: info?.tls,
        }
      : { loaded: false, reason: n.reason },
    js: { schemes: JS_SCHEMES, capabilities: JS_CAPABILITIES },
    rdma: rdmaInfo(),
    insecureTls: insecureTlsUsed(),
  };
}
