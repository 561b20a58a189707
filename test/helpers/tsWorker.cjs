// Runs a TypeScript engine entry under tsx (tests use the sources; the extension uses the bundle):
// in a child process the entry comes in MECHLENS_ENGINE_DATA, in a worker thread as workerData.
require('tsx/cjs');
const data = process.env.MECHLENS_ENGINE_DATA ? JSON.parse(process.env.MECHLENS_ENGINE_DATA) : require('node:worker_threads').workerData;
require(data.entry);
