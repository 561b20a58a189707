import { HookedTransformer } from '../src/engine/model/hookedTransformer.js';
import { allHooks } from '../src/engine/hooks/hooks.js';
import { gpt2SmallConfig, randomParams, randomTokens } from './randomModel.js';
(async () => {
  const cfg = gpt2SmallConfig(); cfg.n_layers = 4;
  const params = randomParams(cfg);
  const m = new HookedTransformer(cfg, params, 'none', 'random', { device: 'cpu' });
  const toks = randomTokens(8,8,cfg.d_vocab);
  const all = allHooks(cfg);
  const sets: Record<string, any> = { plain: [], noResult: all.filter(n=>!n.endsWith('hook_result')), resultOnly: all.filter(n=>n.endsWith('hook_result')), all };
  for (const [k, names] of Object.entries(sets)) {
    for (let i=0;i<3;i++) await m.run(toks,{names});
    const R=10; const t0=performance.now(); for(let i=0;i<R;i++) await m.run(toks,{names}); console.log(k, ((performance.now()-t0)/R).toFixed(1));
  }
})();
