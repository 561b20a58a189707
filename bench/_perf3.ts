import { HookedTransformer } from '../src/engine/model/hookedTransformer.js';
import { allHooks } from '../src/engine/hooks/hooks.js';
import { gpt2SmallConfig, randomParams, randomTokens } from './randomModel.js';
(async () => {
  const cfg = gpt2SmallConfig(); cfg.n_layers = 2;
  const params = randomParams(cfg);
  const m = new HookedTransformer(cfg, params, 'none', 'random', { device: 'cpu' });
  const toks = randomTokens(8,8,cfg.d_vocab);
  const all = allHooks(cfg).filter(n=>n.startsWith('blocks.1.'));
  const sets: Record<string, any> = { plain: [] };
  for (const n of all) sets[n] = [n];
  const base = { startAtLayer: 1, noLogits: true, residual: (await m.run(toks, {stopAtLayer:1})).residual };
  for (const [k, names] of Object.entries(sets)) {
    for (let i=0;i<3;i++) await m.run(null,{names, ...base});
    const R=20; const t0=performance.now(); for(let i=0;i<R;i++) await m.run(null,{names, ...base}); console.log(k, ((performance.now()-t0)/R).toFixed(2));
  }
})();
