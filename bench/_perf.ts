import { HookedTransformer } from '../src/engine/model/hookedTransformer.js';
import { gpt2SmallConfig, randomParams, paramBytes, randomTokens } from './randomModel.js';
(async () => {
  const cfg = gpt2SmallConfig();
  const params = randomParams(cfg);
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  console.log('params MB', paramBytes(params)/1e6, 'with W_U', paramBytes(params,{countTiedUnembed:true})/1e6, 'rss', rss0/1e6);
  const m = new HookedTransformer(cfg, params, 'none', 'random', { device: 'cpu' });
  let t0 = performance.now(); await m.warmUp(); console.log('session creation ms', performance.now()-t0);
  global.gc?.();
  console.log('rss after sessions', process.memoryUsage().rss/1e6);
  for (const [B,P] of [[8,8],[1,128]]) {
    const toks = randomTokens(B,P,cfg.d_vocab);
    for (let i=0;i<3;i++) await m.forward(toks);
    const R=10; t0=performance.now(); for(let i=0;i<R;i++) await m.forward(toks); const plain=(performance.now()-t0)/R;
    for (let i=0;i<2;i++) await m.runWithCache(toks);
    t0=performance.now(); for(let i=0;i<R;i++) await m.runWithCache(toks); const all=(performance.now()-t0)/R;
    console.log(B,P,'plain', plain.toFixed(1), 'all', all.toFixed(1), 'ratio', (all/plain).toFixed(2));
  }
  console.log('rss end', process.memoryUsage().rss/1e6, 'sessions', m.sessionCount());
})();
