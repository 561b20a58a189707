/** Every view renders its mock state in jsdom: key elements present, numbers formatted, interactions wired. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AttentionState, PanelState } from '../../../src/protocol/webview.js';
import { MOCK_ATTENTION, MOCK_ATTRIBUTION, MOCK_ERROR, MOCK_HEATMAP, MOCK_INSPECT, MOCK_LOADING, MOCK_STATES, MOCK_TOPK, MOCK_TOPK_EMPTY } from '../../../src/webview/mocks.js';
import { renderState } from '../../../src/webview/views/index.js';
import { flush, makeCtx, makeDom, texts } from './jsdomEnv.js';

function render(st: PanelState) {
  const dom = makeDom();
  const doc = dom.window.document;
  const ctx = makeCtx(doc);
  const el = renderState(st, ctx);
  doc.getElementById('app')?.appendChild(el);
  return { dom, doc, ctx, el, win: dom.window };
}

/** Any run of 6+ decimals on screen means an unformatted float slipped through. */
function assertNoRawFloats(el: HTMLElement): void {
  const walker = el.ownerDocument.createTreeWalker(el, 4 /* NodeFilter.SHOW_TEXT */);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const m = /\d\.\d{6,}/.exec(n.textContent ?? '');
    assert.equal(m, null, `raw float on screen: ${m?.[0] ?? ''}`);
  }
}

test('every mock state renders without throwing and without raw floats', () => {
  for (const [name, st] of Object.entries(MOCK_STATES)) {
    const { el } = render(st);
    assert.ok(el.classList.contains('ml-view'), name);
    assertNoRawFloats(el);
  }
});

test('inspect: tokens with visible spaces, answer stats, top-k, per-token loss', () => {
  const { el } = render(MOCK_INSPECT);
  const strip = el.querySelector('.ml-tokens');
  assert.ok(strip);
  const chips = strip.querySelectorAll('.ml-token');
  assert.equal(chips.length, 15);
  assert.equal(chips[2]?.querySelector('.ml-ws')?.textContent, '·');
  assert.match(chips[2]?.textContent ?? '', /^·Mary2$/); // token + index subscript
  assert.match(chips[2]?.getAttribute('title') ?? '', /position 2 {2}' Mary' {2}id 5335/);
  const stats = texts(el, '.ml-stat-value');
  for (const s of ['0', '18.31', '68.1%', '+3.36']) assert.ok(stats.includes(s), `stats ${stats.join('|')} lack ${s}`);
  const rows = el.querySelectorAll('.ml-topk tbody tr');
  assert.equal(rows.length, 10);
  assert.ok(rows[0]?.classList.contains('ml-highlight'));
  assert.deepEqual(texts(rows[1] as Element, 'td'), ['1', '·them', '15.52', '4.18%']);
  // The newline token is shown as ⏎, not as an empty chip.
  assert.equal(rows[9]?.querySelector('.ml-token')?.textContent, '⏎');
  // Loss chips: the first token has no loss; the rest are coloured, with the loss in the hover.
  const lossStrip = el.querySelectorAll('.ml-tokens')[1];
  const lossChips = lossStrip?.querySelectorAll<HTMLElement>('.ml-token') ?? [];
  assert.equal(lossChips[0]?.style.backgroundColor, '');
  assert.notEqual(lossChips[2]?.style.backgroundColor, '');
  assert.match(lossChips[2]?.title ?? '', /loss 9\.842 nats \(p = 0\.0053%\)/);
  assert.equal(el.querySelectorAll('.ml-col').length, 14);
  assert.match(el.querySelector('.ml-colchart figcaption')?.textContent ?? '', /mean 3\.78 · max 9\.84/);
});

test('attention: 12×12 thumbnails, mean badge, selecting a head notifies and persists', () => {
  const { el, ctx, win } = render(MOCK_ATTENTION);
  const thumbs = el.querySelectorAll<HTMLButtonElement>('.ml-thumb');
  assert.equal(thumbs.length, 144);
  assert.deepEqual(texts(el, '.ml-attn-rowlabel').slice(0, 2), ['L0', 'L1']);
  assert.equal(texts(el, '.ml-attn-collabel').at(-1), 'H11');
  assert.ok(texts(el, '.ml-badge').includes('mean over 3 prompts'));
  assert.ok(thumbs[0]?.classList.contains('ml-selected'));
  assert.match(el.querySelector('.ml-heatmap-title')?.textContent ?? '', /^L0H0 attention pattern \(mean over 3 prompts\)$/);

  const l9h9 = el.querySelector<HTMLButtonElement>('.ml-thumb[data-layer="9"][data-head="9"]');
  l9h9?.dispatchEvent(new win.MouseEvent('click', { bubbles: true }));
  assert.deepEqual(ctx.host.selected, [{ layer: 9, head: 9 }]);
  assert.ok(l9h9?.classList.contains('ml-selected'));
  assert.ok(!thumbs[0]?.classList.contains('ml-selected'));
  assert.deepEqual(ctx.ui.state.attention, { layer: 9, head: 9, reverse: false, pinned: null });
  assert.match(el.querySelector('.ml-heatmap-title')?.textContent ?? '', /^L9H9/);
});

test('attention: token view colours by where the hovered token attends, and the reverse', () => {
  const { el, win, ctx } = render(MOCK_ATTENTION);
  const pattern = MOCK_ATTENTION.patterns[0]?.[0] ?? [];
  const chips = () => [...el.querySelectorAll<HTMLElement>('.ml-attn-tokens .ml-token')];
  assert.equal(chips().length, 15);
  chips()[14]?.dispatchEvent(new win.MouseEvent('mouseenter'));
  // Forward: chip j shows pattern[14][j]; the strongest key gets the strongest colour.
  const strongest = pattern[14]?.indexOf(Math.max(...(pattern[14] ?? []))) ?? -1;
  assert.match(chips()[strongest]?.title ?? '', /→ .*: \d+(\.\d+)?%$/);
  assert.ok(chips()[14]?.classList.contains('ml-token-focus'));
  assert.notEqual(chips()[strongest]?.style.backgroundColor, '');
  // Reverse: chip j shows pattern[j][focus]; hovering the first token, later tokens attend to it.
  const toggle = el.querySelector<HTMLInputElement>('.ml-attn-token-view input[type=checkbox]');
  assert.ok(toggle);
  toggle.checked = true;
  toggle.dispatchEvent(new win.Event('change'));
  assert.equal(ctx.ui.state.attention?.reverse, true);
  chips()[0]?.dispatchEvent(new win.MouseEvent('mouseenter'));
  assert.match(chips()[3]?.title ?? '', /^' and' → '<\|endoftext\|>': /);
  // Click pins a token; leaving keeps its colouring.
  chips()[5]?.dispatchEvent(new win.MouseEvent('click'));
  chips()[5]?.dispatchEvent(new win.MouseEvent('mouseleave'));
  assert.ok(chips()[5]?.classList.contains('ml-token-pinned'));
  assert.equal(ctx.ui.state.attention?.pinned, 5);
});

test('attention: restores the persisted head; no badge for a single prompt; bad shapes throw', () => {
  const dom = makeDom();
  const ctx = makeCtx(dom.window.document);
  ctx.ui.set('attention', { layer: 10, head: 7, reverse: true, pinned: null });
  const single: AttentionState = { ...MOCK_ATTENTION, prompts: [MOCK_ATTENTION.prompts[0] ?? ''], meanOver: 1 };
  const el = renderState(single, ctx);
  assert.ok(el.querySelector('.ml-thumb[data-layer="10"][data-head="7"]')?.classList.contains('ml-selected'));
  assert.ok(!texts(el, '.ml-badge').some((t) => t.startsWith('mean over')));
  assert.equal(el.querySelector<HTMLInputElement>('.ml-attn-token-view input[type=checkbox]')?.checked, true);
  assert.throws(() => renderState({ ...MOCK_ATTENTION, nHeads: 13 }, makeCtx(dom.window.document)), /layer 0 has 12 heads, expected nHeads = 13/);
});

test('attribution: component bars, head heatmap with top heads, logit lens line', () => {
  const { el, ctx, win } = render(MOCK_ATTRIBUTION);
  const rows = el.querySelectorAll('.ml-barchart .ml-bar-row:not(.ml-bar-axis-row):not(.ml-bar-caption)');
  assert.equal(rows.length, MOCK_ATTRIBUTION.layerLabels.length);
  assert.equal(rows[0]?.querySelector('.ml-bar-label')?.textContent, 'embed');
  const values = texts(el, '.ml-bar-value');
  assert.ok(values.every((v) => /^[+−]?\d/.test(v)), values.join('|'));
  // Negative bars are blue-classed and extend left of zero.
  const i11 = MOCK_ATTRIBUTION.layerLabels.indexOf('11_attn_out');
  assert.ok(rows[i11]?.querySelector('.ml-bar')?.classList.contains('ml-bar-neg'));
  const top = texts(el, '.ml-toplist li .ml-mono');
  assert.equal(top[0], 'L9H9');
  assert.equal(top[1], 'L10H7');
  el.querySelector('.ml-toplist li')?.dispatchEvent(new win.MouseEvent('click'));
  assert.deepEqual(ctx.host.selected, [{ layer: 9, head: 9 }]);
  assert.ok(el.querySelector('canvas.ml-heatmap-canvas'));
  const poly = el.querySelector('polyline.ml-line');
  assert.equal(poly?.getAttribute('points')?.split(' ').length, 25);
  const ticks = texts(el, 'svg .ml-tick');
  assert.ok(ticks.includes('final_post') && ticks.includes('0_pre'));
  assert.ok(texts(el, '.ml-stat-label').includes('logit diff'));
  // The total's part no component writes is its own row; the tooltip does not blame the LayerNorm.
  const labels = texts(el, '.ml-stat-label');
  assert.ok(labels.includes('+ unembedding bias'), labels.join('|'));
  assert.ok(!labels.includes("+ final norm's weight and bias"), 'folded: no final-norm row');
  assert.doesNotMatch(el.innerHTML, /up to the final LayerNorm scale/);
  assert.match(el.textContent ?? '', /attention \(_mid\)/);
  // An attention-only model's lens has no _mid streams, and the caption does not claim them.
  const attnOnly = render({ ...MOCK_ATTRIBUTION, logitLens: { labels: ['0_pre', '1_pre', 'final_post'], values: [0, 1, 2] } }).el;
  assert.doesNotMatch(attnOnly.textContent ?? '', /_mid|\(mid\)/);
  const none = render({ ...MOCK_ATTRIBUTION, lnFinalTerm: 0.125 }).el;
  assert.ok(texts(none, '.ml-stat-label').includes("+ final norm's weight and bias"));
});

test('heatmap panel: one figure per HeatmapData, exports and copies go to the host', async () => {
  const { el, ctx, win } = render(MOCK_HEATMAP);
  assert.equal(el.querySelectorAll('.ml-heatmap').length, 3);
  assert.match(el.querySelector('.ml-description')?.textContent ?? '', /Metric:/);
  const first = el.querySelector('.ml-heatmap');
  const buttons = [...(first?.querySelectorAll<HTMLButtonElement>('button') ?? [])];
  assert.deepEqual(
    buttons.map((b) => b.textContent),
    ['PNG', 'SVG', 'CSV', 'JSON'],
  );
  const click = (label: string) => buttons.find((b) => b.textContent === label)?.dispatchEvent(new win.MouseEvent('click'));
  click('CSV');
  click('JSON');
  click('SVG');
  await flush(5);
  click('PNG');
  await flush(5);
  assert.match(ctx.host.copied[0] ?? '', /^layer\/position,<\|endoftext\|>_0,When_1," Mary_2"/);
  assert.equal((JSON.parse(ctx.host.copied[1] ?? '{}') as { rowAxis?: string }).rowAxis, 'layer');
  assert.equal(ctx.host.saved[0]?.format, 'svg');
  assert.equal(ctx.host.saved[0]?.suggestedName, 'patching-resid-pre-normalised-logit-diff.svg');
  assert.match(ctx.host.saved[0]?.content ?? '', /<svg xmlns/);
  // jsdom has no canvas: PNG export reports why instead of throwing.
  assert.equal(ctx.host.saved.length, 1);
  assert.match(first?.querySelector('.ml-status')?.textContent ?? '', /Saving PNG failed: no canvas available/);
  // The 3072-column figure has no "Values" toggle (cells too small to print numbers).
  const last = el.querySelectorAll('.ml-heatmap')[2];
  assert.equal(last?.querySelector('input[type=checkbox]'), null);
});

test('top-k side view: the prompt tail and a compact table; a message when empty', () => {
  const { el } = render(MOCK_TOPK);
  assert.equal(el.querySelectorAll('.ml-tail .ml-token').length, 8);
  assert.equal(el.querySelector('.ml-ellipsis')?.textContent, '…');
  assert.match(el.textContent ?? '', /last 8 of 15 tokens/);
  assert.deepEqual(texts(el, '.ml-topk th'), ['#', 'token', 'probability']);
  assert.match(el.querySelector('.ml-side-answer')?.textContent ?? '', /rank 0 · 68\.1%/);
  const empty = render(MOCK_TOPK_EMPTY).el;
  assert.equal(empty.querySelector('.ml-empty')?.textContent, MOCK_TOPK_EMPTY.message);
  assert.equal(empty.querySelector('table'), null);
});

test('error and loading states', () => {
  const err = render(MOCK_ERROR).el;
  assert.equal(err.getAttribute('role'), 'alert');
  assert.equal(err.querySelector('h1')?.textContent, MOCK_ERROR.title);
  assert.equal(err.querySelector('.ml-message')?.textContent, MOCK_ERROR.message);
  const load = render(MOCK_LOADING).el;
  assert.ok(load.querySelector('.ml-progress'));
  assert.equal(load.querySelector('h1')?.textContent, MOCK_LOADING.title);
});
