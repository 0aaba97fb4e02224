import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
  // Each database driver stays inside its store: the batch and domain code must not know which store runs.
  {
    files: ['src/**/*.ts'],
    ignores: ['src/store/sqlite/**', 'src/store/postgres/**'],
    rules: { 'no-restricted-imports': ['error', { paths: [driver('better-sqlite3', 'src/store/sqlite/'), driver('pg', 'src/store/postgres/')] }] },
  },
  {
    files: ['src/store/sqlite/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: [driver('pg', 'src/store/postgres/')] }] },
  },
  {
    files: ['src/store/postgres/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: [driver('better-sqlite3', 'src/store/sqlite/')] }] },
  },
);

function driver(name, home) {
  return { name, message: `only ${home} may import ${name}; go through the Store interface (src/store/store.ts)` };
}
