import { defineConfig } from 'vitest/config';

// `npm run test:package` (scripts/test-package.sh): the installed-package test alone. It starts
// its own MinIO, so no global setup; installs and builds take minutes, hence the timeouts.
export default defineConfig({
  test: {
    include: ['test/package.test.ts'],
    pool: 'forks',
    testTimeout: 300_000,
    hookTimeout: 600_000,
    env: {
      AWS_EC2_METADATA_DISABLED: 'true',
      NO_GCE_CHECK: 'true',
      OBJGET_METADATA: 'off',
    },
    reporters: ['default'],
  },
});
