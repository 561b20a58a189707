// Lint enforces the architecture's import boundaries (docs/DESIGN.md):
// only src/extension may import `vscode`; the webview and protocol never pull in the engine
// or onnxruntime (they must stay browser-safe and runtime-agnostic).
import tseslint from 'typescript-eslint';

const noVscode = { name: 'vscode', message: 'Only src/extension may import vscode.' };
const engineOrRuntime = [
  { group: ['**/engine/**', '**/engine'], message: 'The webview/protocol must not import the engine.' },
  { group: ['onnxruntime-node', 'onnxruntime-*', '@tensorflow/*'], message: 'Runtimes live in src/engine only.' },
];

export default tseslint.config(
  { ignores: ['dist/**', 'out/**', 'node_modules/**', 'test/fixtures/**', '**/*.mjs', '**/*.js', '**/*.cjs'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/engine/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: [noVscode] }] },
  },
  {
    files: ['src/protocol/**/*.ts', 'src/webview/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: [noVscode], patterns: engineOrRuntime }] },
  },
);
