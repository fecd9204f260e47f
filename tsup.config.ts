import { defineConfig, type Options } from 'tsup';

/**
 * The CLI (src/cli/) uses the library only through its public API (`../index.js`), and the
 * built CLI imports the built library (`dist/index.js`) instead of a second copy of it.
 */
const publicApi: NonNullable<Options['esbuildPlugins']>[number] = {
  name: 'objget-public-api',
  setup(build) {
    build.onResolve({ filter: /^\.\.\/index\.js$/ }, (a) =>
      /[\\/]src[\\/]cli[\\/]/.test(a.importer) ? { path: './index.js', external: true } : undefined,
    );
  },
};

export default defineConfig([
  {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    shims: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    platform: 'node',
    // The generated napi loader is required at run time, never bundled.
    external: ['../index.cjs'],
  },
  {
    entry: { cli: 'src/cli/main.ts' },
    format: ['esm'],
    sourcemap: true,
    target: 'node20',
    platform: 'node',
    banner: { js: '#!/usr/bin/env node' },
    esbuildPlugins: [publicApi],
  },
]);
