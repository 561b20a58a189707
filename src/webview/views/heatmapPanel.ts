/** Heatmap panel: the run's description, then one Heatmap per HeatmapData (patching sweeps and the like). */
import type { HeatmapState } from '../../protocol/webview.js';
import { Heatmap } from '../components/heatmap.js';
import type { ViewContext } from '../context.js';
import { h } from '../dom.js';
import { panelHeader } from './common.js';

export function validateHeatmap(d: HeatmapState['heatmaps'][number], i: number): void {
  const nCols = d.values[0]?.length ?? 0;
  if (d.values.some((r) => r.length !== nCols)) throw new Error(`heatmap ${i} ('${d.title}'): rows of values have different lengths`);
  if (d.rowLabels.length !== d.values.length) throw new Error(`heatmap ${i} ('${d.title}'): ${d.rowLabels.length} row labels for ${d.values.length} rows`);
  if (d.colLabels.length !== nCols) throw new Error(`heatmap ${i} ('${d.title}'): ${d.colLabels.length} column labels for ${nCols} columns`);
}

export function renderHeatmapPanel(st: HeatmapState, ctx: ViewContext): HTMLElement {
  const { doc } = ctx;
  st.heatmaps.forEach(validateHeatmap);
  const figures = st.heatmaps.map((d, i) => {
    const key = `heatmap:${d.title}`;
    const hm = new Heatmap(
      { doc, theme: ctx.theme, host: ctx.host, disposables: ctx.disposables },
      {
        data: d,
        annotate: ctx.ui.get('annotate')?.[key] ?? false,
        onAnnotateChange: (v) => ctx.ui.set('annotate', { ...(ctx.ui.get('annotate') ?? {}), [key]: v }),
      },
    );
    return h(doc, 'section', { class: 'ml-section', 'data-index': i }, hm.el);
  });
  return h(
    doc,
    'div',
    { class: 'ml-view ml-heatmap-panel' },
    panelHeader(doc, st.heatmaps.length === 1 ? (st.heatmaps[0]?.title ?? 'Heatmap') : 'Results', st.model),
    st.description ? h(doc, 'p', { class: 'ml-description' }, st.description) : null,
    ...(figures.length ? figures : [h(doc, 'p', { class: 'ml-empty' }, 'Nothing to show.')]),
  );
}
