/**
 * The side views' trees: Model (what is loaded and how), Hook points (every TransformerLens hook
 * of the model, grouped by layer, with its axes and sizes) and Runs (the saved runs of the
 * workspace; clicking one re-opens its panel from the saved snapshot).
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { HookInfo, ModelInfo } from '../protocol/engine.js';
import type { EngineHost, EngineHostState } from './engineHost.js';
import type { RunListing, RunStore } from './runStore.js';

type Node = vscode.TreeItem & { children?: Node[] };

function leaf(label: string, description?: string, opts: Partial<vscode.TreeItem> = {}): Node {
  const item: Node = new vscode.TreeItem(label, vscode.TreeItemCollapsibleState.None);
  if (description !== undefined) item.description = description;
  Object.assign(item, opts);
  return item;
}

function group(label: string, children: Node[], expanded = false, opts: Partial<vscode.TreeItem> = {}): Node {
  const item: Node = new vscode.TreeItem(label, expanded ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.Collapsed);
  item.children = children;
  Object.assign(item, opts);
  return item;
}

abstract class SimpleTree implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  protected readonly emitter = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.emitter.event;
  protected abstract roots(): Node[] | Promise<Node[]>;

  refresh(): void {
    this.emitter.fire();
  }

  getTreeItem(n: Node): vscode.TreeItem {
    return n;
  }

  getChildren(n?: Node): Node[] | Promise<Node[]> {
    return n ? (n.children ?? []) : this.roots();
  }

  dispose(): void {
    this.emitter.dispose();
  }
}

const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;

export class ModelTree extends SimpleTree {
  constructor(private readonly host: EngineHost) {
    super();
  }

  protected roots(): Node[] {
    const s: EngineHostState = this.host.state;
    const select = { command: 'mechlens.selectModel', title: 'Select Model' };
    switch (s.kind) {
      case 'idle':
        return [
          leaf(s.spec, 'not loaded', { iconPath: new vscode.ThemeIcon('circle-outline'), tooltip: 'Loaded on first use. Click to load it now.', command: { command: 'mechlens.loadModel', title: 'Load Model' } }),
          leaf('Select another model…', undefined, { iconPath: new vscode.ThemeIcon('list-selection'), command: select }),
        ];
      case 'loading':
        return [leaf(s.spec, 'loading…', { iconPath: new vscode.ThemeIcon('loading~spin') })];
      case 'error':
      case 'stopped':
        return [
          leaf(s.spec, s.kind === 'error' ? 'failed to load' : 'engine stopped', { iconPath: new vscode.ThemeIcon('error'), tooltip: s.message }),
          leaf(s.message, undefined, { tooltip: s.message }),
          leaf(s.kind === 'error' ? 'Select another model…' : 'Restart the engine', undefined, {
            iconPath: new vscode.ThemeIcon(s.kind === 'error' ? 'list-selection' : 'debug-restart'),
            command: s.kind === 'error' ? select : { command: 'mechlens.restartEngine', title: 'Restart Engine' },
          }),
        ];
      case 'ready':
        return modelNodes(s.info);
    }
  }
}

function modelNodes(info: ModelInfo): Node[] {
  const c = info.cfg;
  const cfgFields: [string, string | number | null][] = [
    ['n_layers', c.n_layers], ['n_heads', c.n_heads], ['d_model', c.d_model], ['d_head', c.d_head], ['d_mlp', c.d_mlp], ['d_vocab', c.d_vocab],
    ['n_ctx', c.n_ctx], ['act_fn', c.act_fn], ['normalization_type', c.normalization_type], ['positional_embedding_type', c.positional_embedding_type],
    ...(c.n_key_value_heads ? [['n_key_value_heads', c.n_key_value_heads] as [string, number]] : []),
    ...(c.num_experts ? [['num_experts', c.num_experts] as [string, number], ['experts_per_token', c.experts_per_token ?? null] as [string, number | null]] : []),
    ...(c.original_architecture ? [['architecture', c.original_architecture] as [string, string]] : []),
  ];
  return [
    ...(info.warnings ?? []).map((w, i) => leaf('Warning', w, { iconPath: new vscode.ThemeIcon('warning'), tooltip: w, id: `model.warning.${i}` })),
    leaf(c.model_name, info.spec === c.model_name ? undefined : info.spec, { iconPath: new vscode.ThemeIcon('circuit-board'), tooltip: `Loaded from ${info.source}`, id: 'model.name' }),
    group('Config', cfgFields.map(([k, v]) => leaf(k, v === null ? 'none' : String(v))), true, { iconPath: new vscode.ThemeIcon('settings'), id: 'model.config' }),
    leaf('Device', info.device, { iconPath: new vscode.ThemeIcon('server-environment') }),
    leaf('Memory', mb(info.paramBytes), { iconPath: new vscode.ThemeIcon('database'), tooltip: 'Parameters held by the engine (float32)' }),
    leaf('Processing', info.processing, { iconPath: new vscode.ThemeIcon('wand'), tooltip: 'Weight processing (mechlens.processing): none, default (fold LN, centre writing weights and unembed, fold value biases) or default+refactor' }),
    leaf('Tokenizer', info.tokenizer, { iconPath: new vscode.ThemeIcon('symbol-string') }),
    leaf('Source', info.source, { iconPath: new vscode.ThemeIcon('folder'), tooltip: info.source }),
    leaf('Load time', `${Math.round(info.loadMs)} ms`, { iconPath: new vscode.ThemeIcon('watch') }),
  ];
}

/** Size of each axis for the model, to show next to the axis names. */
export function axisSizes(info: ModelInfo): Record<string, number | undefined> {
  const c = info.cfg;
  return { d_model: c.d_model, head_index: c.n_heads, d_head: c.d_head, d_mlp: c.d_mlp ?? undefined, d_vocab: c.d_vocab, one: 1, expert: c.num_experts ?? undefined, top_k: c.experts_per_token ?? undefined };
}

export function hookShape(h: HookInfo, sizes: Record<string, number | undefined>): string {
  const size = (a: string) => (a === 'head_index' && h.heads !== undefined ? h.heads : sizes[a]);
  return `[${h.axes.map((a) => (size(a) !== undefined ? `${a}=${size(a)}` : a)).join(', ')}]`;
}

export class HooksTree extends SimpleTree {
  constructor(private readonly host: EngineHost) {
    super();
  }

  protected roots(): Node[] {
    const info = this.host.model;
    if (!info) return [leaf('No model loaded', 'hooks appear once one is', { iconPath: new vscode.ThemeIcon('info'), command: { command: 'mechlens.loadModel', title: 'Load Model' } })];
    const sizes = axisSizes(info);
    const item = (h: HookInfo, label: string): Node =>
      leaf(label, `[${h.axes.join(', ')}]`, {
        tooltip: new vscode.MarkdownString(`\`${h.name}\`\n\n${hookShape(h, sizes)}`),
        contextValue: 'mechlens.hook',
        iconPath: new vscode.ThemeIcon('symbol-field'),
        id: `hook:${h.name}`,
      });
    const byLayer = new Map<number, HookInfo[]>();
    const before: HookInfo[] = [];
    const after: HookInfo[] = [];
    for (const h of info.hooks) {
      const m = /^blocks\.(\d+)\./.exec(h.name);
      if (m) {
        const l = Number(m[1]);
        byLayer.set(l, [...(byLayer.get(l) ?? []), h]);
      } else if (h.name.startsWith('ln_final')) after.push(h);
      else before.push(h);
    }
    const nodes: Node[] = [];
    if (before.length) nodes.push(group('Embedding', before.map((h) => item(h, h.name)), false, { id: 'hooks:embed' }));
    for (const [l, hs] of [...byLayer.entries()].sort((a, b) => a[0] - b[0])) {
      nodes.push(group(`Layer ${l}`, hs.map((h) => item(h, h.name.slice(`blocks.${l}.`.length))), false, { description: `blocks.${l}`, id: `hooks:layer${l}` }));
    }
    if (after.length) nodes.push(group('Final', after.map((h) => item(h, h.name)), false, { id: 'hooks:final' }));
    return nodes;
  }

  /** The full hook name of a tree item (for "Copy Hook Name"). */
  static hookName(n: vscode.TreeItem): string | undefined {
    return typeof n.id === 'string' && n.id.startsWith('hook:') ? n.id.slice(5) : undefined;
  }
}

export class RunsTree extends SimpleTree {
  constructor(private readonly store: () => RunStore | undefined) {
    super();
  }

  protected async roots(): Promise<Node[]> {
    const store = this.store();
    if (!store) return [leaf('Open a folder to keep runs', undefined, { iconPath: new vscode.ThemeIcon('info') })];
    let runs: RunListing[];
    try {
      runs = await store.list();
    } catch (e) {
      return [leaf(`Cannot list runs: ${(e as Error).message}`, undefined, { iconPath: new vscode.ThemeIcon('error') })];
    }
    if (runs.length === 0) return [leaf('No runs yet', 'open a panel from a prompt', { iconPath: new vscode.ThemeIcon('info') })];
    return runs.map((r) => {
      if (r.incomplete) {
        const i = r.incomplete;
        return leaf(`${path.basename(i.experiment).replace(/\.experiment\.json$/, '')} (incomplete)`, `${i.done} of ${i.total} analyses · ${i.startedAt ? new Date(i.startedAt).toLocaleString() : r.id}`, {
          iconPath: new vscode.ThemeIcon('debug-pause'),
          tooltip: new vscode.MarkdownString(`**Incomplete run** of \`${i.experiment}\`: it was killed or interrupted after ${i.done} of ${i.total} analyses.\n\nResume computes only the missing ones (\`mechlens run --resume\` in a terminal); Delete removes it.`),
          contextValue: 'mechlens.run.incomplete',
          id: `run:${r.id}`,
        });
      }
      if (!r.record) {
        return leaf(r.id, 'unreadable', { iconPath: new vscode.ThemeIcon('warning'), tooltip: r.problem ?? '', contextValue: 'mechlens.run', id: `run:${r.id}`, resourceUri: vscode.Uri.file(r.file) });
      }
      const rec = r.record;
      const when = new Date(rec.createdAt);
      const icon = rec.kind === 'attention' ? 'eye' : rec.kind === 'attribution' ? 'graph' : rec.kind === 'inspect' ? 'search' : 'beaker';
      return leaf(rec.title.replace(/^MechLens: /, ''), `${rec.model.name} · ${when.toLocaleString()}`, {
        iconPath: new vscode.ThemeIcon(icon),
        tooltip: new vscode.MarkdownString(`**${rec.title}**\n\n${rec.kind} · ${rec.model.name} (${rec.model.processing}) · ${rec.createdAt}\n\n\`${r.file}\``),
        contextValue: 'mechlens.run',
        id: `run:${rec.id}`,
        resourceUri: vscode.Uri.file(r.file),
        command: { command: 'mechlens.openRun', title: 'Open Run', arguments: [rec.id] },
      });
    });
  }

  static runId(n: unknown): string | undefined {
    if (typeof n === 'string') return n;
    const id = (n as vscode.TreeItem | undefined)?.id;
    return typeof id === 'string' && id.startsWith('run:') ? id.slice(4) : undefined;
  }
}
