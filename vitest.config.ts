import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The installed-package test runs on its own (npm run test:package, vitest.package.config.ts).
    exclude: [...configDefaults.exclude, 'test/package.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Never let a metadata-service probe leave the machine during tests.
    env: {
      AWS_EC2_METADATA_DISABLED: 'true',
      NO_GCE_CHECK: 'true',
      OBJGET_METADATA: 'off',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      // Nor may a developer's own ~/.aws profiles answer for a test that expects no credentials.
      AWS_CONFIG_FILE: '/nonexistent/objget-test/aws-config',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/objget-test/aws-credentials',
    },
    reporters: ['default'],
  },
});
