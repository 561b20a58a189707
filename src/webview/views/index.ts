/** Picks the view for a panel state. Views throw on inconsistent data; the app shows that as an error state. */
import type { PanelState } from '../../protocol/webview.js';
import type { ViewContext } from '../context.js';
import { renderAttention } from './attention.js';
import { renderAttribution } from './attribution.js';
import { renderExperiment } from './experiment.js';
import { renderFeature } from './feature.js';
import { renderHeatmapPanel } from './heatmapPanel.js';
import { renderInspect } from './inspect.js';
import { renderError, renderLoading } from './status.js';
import { renderTopK } from './topkView.js';
import { renderTraining, trainingUpdaters } from './training.js';

export function renderState(st: PanelState, ctx: ViewContext): HTMLElement {
  switch (st.kind) {
    case 'inspect':
      return renderInspect(st, ctx);
    case 'attention':
      return renderAttention(st, ctx);
    case 'attribution':
      return renderAttribution(st, ctx);
    case 'heatmap':
      return renderHeatmapPanel(st, ctx);
    case 'experiment':
      return renderExperiment(st, ctx);
    case 'training':
      return renderTraining(st, ctx);
    case 'topk':
      return renderTopK(st, ctx);
    case 'feature':
      return renderFeature(st, ctx);
    case 'error':
      return renderError(st, ctx);
    case 'loading':
      return renderLoading(st, ctx);
    default: {
      const never: never = st;
      throw new Error(`unknown panel state kind '${(never as { kind?: unknown }).kind as string}'`);
    }
  }
}

/**
 * Shows `st` in the element a previous renderState made for a state of the same kind, when that
 * view updates in place (training); false: render it anew.
 */
export function updateState(el: HTMLElement, st: PanelState): boolean {
  if (st.kind !== 'training') return false;
  const update = trainingUpdaters.get(el);
  if (!update) return false;
  update(st);
  return true;
}
