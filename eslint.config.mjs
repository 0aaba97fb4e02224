import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const DRIVER_HOME = { 'better-sqlite3': 'src/store/sqlite/', pg: 'src/store/postgres/' };

export default tseslint.config(
  { ignores: ['dist/**', 'dist-bench/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
  // The worker modules of test/support/workers are plain CommonJS that Node loads itself (outside jest's transform).
  {
    files: ['test/**/*.js'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', module: 'writable', process: 'readonly', Buffer: 'readonly', console: 'readonly', __dirname: 'readonly', WebAssembly: 'readonly' },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  // The layers of docs/architecture.md, lowest first: domain (and xml); then batch and store (batch
  // may use the Store interface, store never imports batch); then server; then the cli. Nothing
  // imports upward, and each database driver stays inside its own store folder. Each file matches
  // the last of these that names it (flat config: a later rule setting replaces an earlier one).
  restrict('src/**/*.ts', [], ['better-sqlite3', 'pg']),
  restrict('src/domain/**/*.ts', ['batch', 'store', 'server', 'cli', 'events', 'tasks'], ['better-sqlite3', 'pg']),
  restrict('src/xml/**/*.ts', ['batch', 'store', 'server', 'cli', 'events', 'tasks'], ['better-sqlite3', 'pg']),
  restrict('src/batch/**/*.ts', ['server', 'cli'], ['better-sqlite3', 'pg']),
  restrict('src/store/**/*.ts', ['batch', 'server', 'cli'], ['better-sqlite3', 'pg']),
  restrict('src/store/sqlite/**/*.ts', ['batch', 'server', 'cli'], ['pg']),
  restrict('src/store/postgres/**/*.ts', ['batch', 'server', 'cli'], ['better-sqlite3']),
  restrict('src/tasks/**/*.ts', ['server', 'cli'], ['better-sqlite3', 'pg']),
  restrict('src/server/**/*.ts', ['cli'], ['better-sqlite3', 'pg']),
);

/** Files matching `files` may import neither from the src/ folders (or src/cli.ts) named in `above`, nor the drivers named in `drivers`. */
function restrict(files, above, drivers) {
  const patterns = above.map((folder) => ({
    group: [`../${folder}`, `../${folder}/*`, `../../${folder}`, `../../${folder}/*`, `../../../${folder}`, `../../../${folder}/*`],
    message: `a lower layer must not import from ${folder} (docs/architecture.md)`,
  }));
  const paths = drivers.map((name) => ({
    name,
    message: `only ${DRIVER_HOME[name]} may import ${name}; go through the Store interface (src/store/store.ts)`,
  }));
  return { files: [files], rules: { 'no-restricted-imports': ['error', { paths, patterns }] } };
}
