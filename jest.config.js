/**
 * Three projects: the unit tests once, and the whole integration suite twice, once on each
 * store (SPEC §8: same behaviour, same test suite). test/support/stores.ts reads the store a
 * project runs on; test/integration/postgres/ holds what only a shared PostgreSQL store can
 * show (several server processes, the database going away). `npm start`'s default store is
 * SQLite by definition (SPEC §1), so start.test.ts runs on SQLite only; the benchmark's tiny
 * run is not a store test; sqlite-file-gone.test.ts deletes the SQLite file under a running
 * server, which has no PostgreSQL counterpart (postgres/database-down.test.ts is that one).
 * @type {import('jest').Config}
 */
const shared = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['@swc/jest'] },
  testMatch: ['**/*.test.ts'],
  setupFilesAfterEnv: ['<rootDir>/test/support/after-each-file.ts'],
};

module.exports = {
  testTimeout: 60000,
  maxWorkers: 2,
  projects: [
    { ...shared, displayName: 'unit', roots: ['<rootDir>/test/unit'] },
    {
      ...shared,
      displayName: 'sqlite',
      roots: ['<rootDir>/test/integration'],
      testPathIgnorePatterns: ['/test/integration/postgres/'],
      globals: { FLEXI_TEST_STORE: 'sqlite' },
    },
    {
      ...shared,
      displayName: 'postgres',
      roots: ['<rootDir>/test/integration'],
      testPathIgnorePatterns: ['/test/integration/start\\.test\\.ts$', '/test/integration/bench\\.test\\.ts$', '/test/integration/sqlite-file-gone\\.test\\.ts$'],
      globals: { FLEXI_TEST_STORE: 'postgres' },
      globalSetup: '<rootDir>/test/support/postgres-setup.ts',
      globalTeardown: '<rootDir>/test/support/postgres-teardown.ts',
    },
  ],
};
