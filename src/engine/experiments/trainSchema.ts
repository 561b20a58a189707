/**
 * The `"kind": "train"` experiment file: a toy transformer to train (HookedTransformerConfig field
 * names), its task, the optimiser (HookedTransformerTrainConfig / torch.optim.AdamW names), the
 * seed, the checkpoint folder, and the analyses to run on the trained checkpoint. schema.ts puts
 * this schema beside the analysis experiment's in schemas/experiment.schema.json ("kind" picks
 * one), and parse.ts validates train files against it, so the editor, the CodeLens and the worker
 * agree on what is valid.
 */
import type { TrainAnalysisKind, TrainAnalysisSpec, TrainModelPayload, TrainTaskPayload } from '../../protocol/engine.js';
import type { Schema } from './jsonSchema.js';

export interface TrainModelSpec extends TrainModelPayload {
  /** Zero W_pos and never update it (seed 001's deactivate_position). */
  zero_pos_embed?: boolean;
}

export interface TrainOptimizerSpec {
  batch_size: number;
  max_steps: number;
  lr: number;
  betas?: [number, number];
  eps?: number;
  weight_decay?: number;
  decay_params?: 'all' | 'matrices';
  max_grad_norm?: number | null;
  warmup_steps?: number;
  save_every?: number | null;
  keep_checkpoints?: number;
}

export interface TrainExperimentFile {
  $schema?: string;
  kind: 'train';
  title?: string;
  description?: string;
  model: TrainModelSpec;
  task: TrainTaskPayload;
  training: TrainOptimizerSpec;
  seed?: number;
  checkpoints?: string;
  analysis_seed?: number;
  analyses?: TrainAnalysisSpec[];
}

const int = (description: string, minimum = 0, extra: Partial<Schema> = {}): Schema => ({ type: 'integer', minimum, description, ...extra });
const layerList: Schema = { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 1, description: 'Only these layers (default: every layer).' };
const headList: Schema = { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 1, description: 'Only these heads of each layer (default: every head).' };
const weights: Schema = {
  enum: ['raw', 'folded'],
  default: 'folded',
  description: "'raw': the trained weights (the seed's `model`); 'folded': the LayerNorm-folded analysis model (fold_ln, center_writing_weights, center_unembed, fold_value_biases; the seed's `analysis_model`).",
};
const sequences = (what: string, dflt: number): Schema => int(`Fresh sequences of the task ${what}.`, 1, { default: dflt });

function analysis(kind: TrainAnalysisKind, description: string, properties: Record<string, Schema> = {}): Schema {
  return {
    type: 'object',
    description,
    properties: {
      kind: { const: kind, description },
      title: { type: 'string', description: 'Heading of this result in the analysis panel (default: generated).' },
      ...properties,
    },
    required: ['kind'],
    additionalProperties: false,
  };
}

/** The analyses a train experiment can run after training (seed 001's notebook, step by step). */
export const trainAnalysisSchemas: Schema[] = [
  analysis('loss', 'Loss of the trained model on fresh sequences of the task (seed 001: 4000 sequences), overall and by position.', {
    sequences: sequences('scored', 4000),
  }),
  analysis('attention_patterns', 'Mean attention pattern of each layer over fresh sequences and heads (cache["attn", L].mean([0, 1])), query x key.', {
    sequences: sequences('averaged over', 4000),
  }),
  analysis('logit_contributions', "Direct contribution of each residual component (embed, each attn_out and mlp_out) to the logit of each position's target (for previous_token, the previous token): components centred, divided by ln_final's scale, times ln_final.w * W_U, centred over the vocabulary.", {
    sequence: int('Which fresh sequence (0 = the first).', 0, { default: 0 }),
  }),
  analysis('fold_ln', 'Builds the LayerNorm-folded analysis model (LN becomes LNPre: fold_ln, center_writing_weights, center_unembed, fold_value_biases) and checks it gives the same log-probabilities as the trained model.', {
    sequences: sequences('compared on', 64),
  }),
  analysis('qk_circuit', "Full QK circuit W_E W_Q W_Kᵀ W_Eᵀ of each head, query token x key token.", {
    layers: layerList,
    heads: headList,
    weights,
    tokens: int('Show at most this many vocabulary rows and columns (the first ones).', 1, { default: 512 }),
  }),
  analysis('ov_circuit', "Full OV circuit of each head: W_E W_V W_O into an MLP's W_in (source token x neuron, the seed's choice) or into W_U (source token x output token).", {
    layers: layerList,
    heads: headList,
    into: { enum: ['mlp_in', 'unembed'], default: 'mlp_in', description: "'mlp_in': W_E W_V W_O W_in[mlp_layer]; 'unembed': W_E W_V W_O W_U." },
    mlp_layer: int("With mlp_in: the MLP whose W_in reads the head (default: the head's own layer; seed 001 uses 0 for both layers)."),
    weights,
    tokens: int('Show at most this many vocabulary rows (the first ones).', 1, { default: 512 }),
  }),
  analysis('mlp_activations', "MLP activations (blocks.L.mlp.hook_post) of each layer: one sequence's map, the mean over fresh sequences, and each neuron's firing rate (post > 0), position x neuron.", {
    layers: layerList,
    sequences: sequences('averaged over', 4000),
    sequence: int('The sequence whose own map is shown (0 = the first).', 0, { default: 0 }),
  }),
  analysis('ablation', 'Replace every hook in turn by its mean over fresh sequences (or by zero) and measure the loss on other fresh sequences (seed 001 step 7); a bar per hook.', {
    ablation: { enum: ['mean', 'zero'], default: 'mean', description: 'Replace each activation by its mean over the reference sequences, or by zero.' },
    sequences: sequences('evaluated (the mean is taken over as many others)', 4000),
    hooks: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 }, description: 'Full hook names to ablate (default: every hook except hook_pos_embed and hook_result, in hook_dict order).' },
  }),
];

const pos = (description: string): Schema => ({ type: 'integer', minimum: 1, description });

export const trainExperimentSchema: Schema = {
  type: 'object',
  description: 'Train a toy transformer, then analyse it (seed 001: no positional embeddings, predict the previous token). Train, Stop, Resume and Analyse are CodeLenses on the file.',
  properties: {
    $schema: { type: 'string', description: 'Path or URL of this schema, for editors.' },
    kind: { const: 'train', description: 'A training experiment.' },
    title: { type: 'string', description: 'Title of the experiment (training and analysis panels, runs list).' },
    description: { type: 'string', description: 'What the experiment trains and why.' },
    model: {
      type: 'object',
      description: 'The model, in TransformerLens HookedTransformerConfig field names.',
      properties: {
        n_layers: pos('Number of transformer blocks.'),
        d_model: pos('Width of the residual stream.'),
        n_heads: pos('Attention heads per layer.'),
        d_head: pos('Width of each head (default d_model / n_heads).'),
        d_mlp: pos('Hidden width of each MLP (default 4 * d_model); leave out with attn_only.'),
        attn_only: { type: 'boolean', default: false, description: 'Attention-only blocks (no MLPs).' },
        d_vocab: { type: 'integer', minimum: 0, description: 'Vocabulary size. Tokens are ids 0..d_vocab-1 (BOS is 0); for a text task 0 or left out means the tokenizer\'s.' },
        n_ctx: pos('Sequence length of every training sequence (and the context).'),
        act_fn: { enum: ['relu', 'gelu', 'gelu_new', 'gelu_fast', 'silu'], default: 'gelu_new', description: 'MLP activation.' },
        normalization_type: { anyOf: [{ enum: ['LN', 'LNPre', 'RMS', 'RMSPre'] }, { type: 'null' }], default: 'LN', description: "'LN': LayerNorm with weights; 'LNPre': centring and scaling only; 'RMS': RMSNorm with weights (Llama); 'RMSPre': scaling only; null: none." },
        positional_embedding_type: { enum: ['standard', 'rotary', 'none'], default: 'standard', description: "'standard': a learned W_pos; 'rotary': rotary embeddings on q and k (GPT-NeoX, Llama); 'none': no positional embedding at all." },
        rotary_dim: pos('Rotary: dims of each head that are rotated (default d_head; GPT-NeoX uses a fraction).'),
        rotary_base: { type: 'number', exclusiveMinimum: 0, default: 10000, description: 'Rotary: the frequency base (rope_theta).' },
        n_key_value_heads: pos('Grouped-query attention: key/value heads (a divisor of n_heads; default n_heads).'),
        gated_mlp: { type: 'boolean', default: false, description: "MLP is act(x W_gate) * (x W_in) + b_in (Llama's SwiGLU with act_fn 'silu')." },
        parallel_attn_mlp: { type: 'boolean', default: false, description: 'Attention and MLP both read resid_pre and add into resid_post (GPT-NeoX); no resid_mid.' },
        zero_pos_embed: { type: 'boolean', default: false, description: 'Zero W_pos and freeze it (seed 001: W_pos.data[:] = 0; W_pos.requires_grad = False): the model gets no positional information; checkpoints keep a zero W_pos.' },
        model_name: { type: 'string', minLength: 1, description: "cfg.model_name of the trained model (default: the file's name)." },
      },
      required: ['n_layers', 'd_model', 'n_heads', 'n_ctx'],
      additionalProperties: false,
    },
    task: {
      description: 'What the model learns.',
      anyOf: [
        {
          type: 'object',
          description: "previous_token (seed 001): random tokens in [1, d_vocab) after BOS; position t predicts token t-1 (logits[:, 1:] against tokens[:, :-1]).",
          properties: {
            kind: { const: 'previous_token', description: 'Predict the previous token.' },
            bos_token_id: int('The BOS id at position 0.', 0, { default: 0 }),
          },
          required: ['kind'],
          additionalProperties: false,
        },
        {
          type: 'object',
          description: 'induction: BOS, then a random sequence repeated twice; next-token prediction.',
          properties: {
            kind: { const: 'induction', description: 'Repeated random sequences (induction heads).' },
            bos_token_id: int('The BOS id at position 0.', 0, { default: 0 }),
            loss_on: { enum: ['all', 'repeated'], default: 'all', description: "'repeated': score only the second copy, which only induction can predict." },
          },
          required: ['kind'],
          additionalProperties: false,
        },
        {
          type: 'object',
          description: 'text: next-token prediction on random windows of a text file.',
          properties: {
            kind: { const: 'text', description: 'Language modelling on a text file.' },
            file: { type: 'string', minLength: 1, description: 'The text file, relative to this experiment file.' },
            tokenizer: { enum: ['char', 'gpt2'], description: "'char': one token per distinct character of the file; 'gpt2': GPT-2's BPE (d_vocab 50257)." },
          },
          required: ['kind', 'file', 'tokenizer'],
          additionalProperties: false,
        },
      ],
    },
    training: {
      type: 'object',
      description: 'Optimisation: AdamW (torch.optim.AdamW) with gradient clipping and a linear warm-up, one fresh batch per step.',
      properties: {
        batch_size: pos('Sequences per step.'),
        max_steps: pos('Optimizer steps (the seed calls them epochs).'),
        lr: { type: 'number', exclusiveMinimum: 0, description: 'Peak learning rate.' },
        betas: { type: 'array', items: { type: 'number', minimum: 0, maximum: 0.999999 }, minItems: 2, maxItems: 2, default: [0.9, 0.999], description: "AdamW's (beta1, beta2)." },
        eps: { type: 'number', exclusiveMinimum: 0, default: 1e-8, description: "AdamW's eps." },
        weight_decay: { type: 'number', minimum: 0, default: 0.01, description: 'Decoupled weight decay (torch.optim.AdamW default 0.01).' },
        decay_params: { enum: ['all', 'matrices'], default: 'all', description: "'all': every parameter decays (AdamW(model.parameters()), as the seed); 'matrices': only W_* matrices." },
        max_grad_norm: { type: ['number', 'null'], exclusiveMinimum: 0, default: null, description: 'clip_grad_norm_ max norm, or null for no clipping.' },
        warmup_steps: { type: 'integer', minimum: 0, default: 0, description: 'lr x min(step / warmup_steps, 1) (torch LambdaLR, step from 0; the seed uses 100).' },
        save_every: { type: ['integer', 'null'], minimum: 1, default: 500, description: 'Checkpoint every this many steps (and at the end and on Stop); null: only then.' },
        keep_checkpoints: int('How many step-N checkpoints to keep (oldest removed first).', 1, { default: 3 }),
      },
      required: ['batch_size', 'max_steps', 'lr'],
      additionalProperties: false,
    },
    seed: int('Seed of the initialisation and of the training data stream.', 0, { default: 0 }),
    checkpoints: { type: 'string', minLength: 1, description: "Checkpoint folder, relative to this file's folder (default .mechlens/train/<file name>/ in the workspace). Each checkpoint is a model folder step-NNNNNN/ (config.json, model.safetensors, optimizer and trainer state); `latest` names the newest." },
    analysis_seed: int('Seed of the fresh sequences the analyses use (default seed + 1, so they are not training batches).', 0),
    analyses: {
      type: 'array',
      description: 'Analyses that "Analyse" runs on the latest checkpoint, in order.',
      items: { anyOf: trainAnalysisSchemas },
    },
  },
  required: ['kind', 'model', 'task', 'training'],
  additionalProperties: false,
};
