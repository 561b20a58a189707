// Lint enforces the architecture's import boundaries (docs/DESIGN.md, "Layers"):
// only src/extension may import `vscode`; the webview and protocol never pull in the engine
// or onnxruntime (they must stay browser-safe and runtime-agnostic); only src/engine/backends
// imports onnxruntime; the engine never imports the editor (src/extension); the ground floor
// (tensor, hooks) and the graph never import the model layer; no import cycles anywhere.
import tseslint from 'typescript-eslint';
import { importX, createNodeResolver } from 'eslint-plugin-import-x';

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
  {
    // eslint-plugin-import-x resolves our `.js` specifiers to the `.ts` sources.
    files: ['src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [createNodeResolver({ extensionAlias: { '.js': ['.ts', '.js'] } })],
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-restricted-paths': ['error', {
        zones: [
          { target: './src/engine', from: './src/extension', message: 'The engine runs without the editor: src/engine must not import src/extension.' },
          { target: './src/engine', from: './src/webview', message: 'The engine must not import the webview bundle.' },
          { target: ['./src/engine/tensor', './src/engine/hooks'], from: ['./src/engine/model', './src/engine/graph', './src/engine/analysis', './src/engine/training', './src/engine/experiments'], message: 'tensor/ and hooks/ are the ground floor: pass sizes in rather than importing upper layers.' },
          { target: './src/engine/graph', from: ['./src/engine/model/params.ts', './src/engine/model/load.ts', './src/engine/model/hookedTransformer.ts', './src/engine/analysis', './src/engine/training', './src/engine/experiments'], message: 'Graph code takes plain tensors and a config, not the model layer.' },
          { target: './src/engine/model', from: ['./src/engine/training', './src/engine/experiments', './src/engine/analysis'], message: 'Loading and running models must not depend on the trainer, experiments or analyses.' },
        ],
      }],
    },
  },
  {
    files: ['src/engine/**/*.ts'],
    ignores: ['src/engine/backends/**'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [noVscode, { name: 'onnxruntime-node', message: 'Only src/engine/backends imports onnxruntime (use its exported types, e.g. OrtTensor).' }],
        patterns: [{ group: ['onnxruntime-*'], message: 'Only src/engine/backends imports onnxruntime.' }],
      }],
    },
  },
);
