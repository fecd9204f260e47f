import { defineConfig } from 'tsup';

export default defineConfig({
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
});
