/**
 * The `"kind": "train_sae"` experiment file: train a sparse autoencoder on one hook's activations
 * over a corpus with MechLens's own trainer (src/engine/sae/train.ts), saved in SAELens's format.
 * Field names are SAELens's (LanguageModelSAERunnerConfig, StandardTrainingSAEConfig,
 * TopKTrainingSAEConfig) where it has them. schema.ts puts this schema beside the others in
 * schemas/experiment.schema.json ("kind" picks one).
 */
import type { Schema } from './jsonSchema.js';

export interface SaeTrainExperimentFile {
  $schema?: string;
  kind: 'train_sae';
  title?: string;
  description?: string;
  model?: string;
  hook: string;
  sae: {
    architecture: 'standard' | 'topk';
    expansion_factor?: number;
    d_sae?: number;
    k?: number;
    l1_coefficient?: number;
    l1_warm_up_steps?: number;
    aux_loss_coefficient?: number;
    apply_b_dec_to_input?: boolean;
    b_dec_init?: 'zeros' | 'mean';
    decoder_init_norm?: number | null;
  };
  training: {
    steps?: number;
    training_tokens?: number;
    batch_size?: number;
    lr?: number;
    betas?: [number, number];
    lr_warm_up_steps?: number;
    lr_decay_steps?: number;
    max_grad_norm?: number | null;
    dead_feature_window?: number;
    log_every?: number;
  };
  corpus?: string;
  context_size?: number;
  prepend_bos?: boolean;
  corpus_tokens?: number;
  eval_tokens?: number;
  seed?: number;
  output?: string;
}

const posInt = (description: string, extra: Partial<Schema> = {}): Schema => ({ type: 'integer', minimum: 1, description, ...extra });
const nonNegInt = (description: string, extra: Partial<Schema> = {}): Schema => ({ type: 'integer', minimum: 0, description, ...extra });

export const saeTrainExperimentSchema: Schema = {
  type: 'object',
  description: "Train a sparse autoencoder (standard ReLU + L1, or TopK) on a hook's activations over a corpus with MechLens's trainer; saved as an SAELens folder (cfg.json + sae_weights.safetensors).",
  properties: {
    $schema: { type: 'string', description: 'Path or URL of this schema, for editors.' },
    kind: { const: 'train_sae', description: 'Train an SAE.' },
    title: { type: 'string', description: 'Title of the run (shown in the training panel).' },
    description: { type: 'string', description: 'What the SAE is for.' },
    model: { type: 'string', minLength: 1, default: 'builtin:default', description: 'The model whose activations the SAE reads: builtin:default, a Hugging Face id or a model folder (relative to this file). Loaded with processing "default", as HookedTransformer.from_pretrained.' },
    hook: { type: 'string', minLength: 1, examples: ['blocks.1.hook_resid_post', 'blocks.0.hook_mlp_out'], description: 'The hook (TransformerLens name) the SAE encodes and reconstructs: a [batch, pos, d] activation (residual stream, attn_out, mlp_out, MLP neurons).' },
    sae: {
      type: 'object',
      description: 'The SAE (SAELens training-config names).',
      properties: {
        architecture: { enum: ['standard', 'topk'], description: "'standard': ReLU with an L1 penalty on activations times decoder-row norms (SAELens's StandardTrainingSAE); 'topk': the k largest pre-activations kept (TopKTrainingSAE, decoder norms rescaled, AuxK loss on dead features)." },
        expansion_factor: { type: 'number', exclusiveMinimum: 0, description: 'd_sae = expansion_factor × the hook\'s width (default 8 when d_sae is not given).' },
        d_sae: posInt('Number of features (instead of expansion_factor).'),
        k: posInt('TopK: features kept per token.', { default: 16 }),
        l1_coefficient: { type: 'number', minimum: 0, default: 5, description: 'Standard: the L1 penalty coefficient.' },
        l1_warm_up_steps: nonNegInt('Standard: the L1 coefficient rises linearly from 0 over these steps.', { default: 0 }),
        aux_loss_coefficient: { type: 'number', minimum: 0, default: 1, description: 'TopK: coefficient of the auxiliary loss that revives dead features (AuxK).' },
        apply_b_dec_to_input: { type: 'boolean', default: true, description: 'Subtract b_dec from the input before encoding (SAELens default).' },
        b_dec_init: { enum: ['zeros', 'mean'], default: 'mean', description: "'mean': b_dec starts at the activations' mean; 'zeros': at 0 (SAELens)." },
        decoder_init_norm: { type: ['number', 'null'], exclusiveMinimum: 0, default: 0.1, description: 'Norm of each decoder row at initialisation (SAELens decoder_init_norm; null: kaiming-uniform as drawn).' },
      },
      required: ['architecture'],
      additionalProperties: false,
    },
    training: {
      type: 'object',
      description: 'Optimisation: Adam with gradient clipping, one shuffled batch of activations per step.',
      properties: {
        steps: posInt('Optimizer steps (or give training_tokens).'),
        training_tokens: posInt('Activations to train on in all: steps = training_tokens / batch_size.'),
        batch_size: posInt('Activations (tokens) per step.', { default: 4096 }),
        lr: { type: 'number', exclusiveMinimum: 0, default: 3e-4, description: "Adam's learning rate." },
        betas: { type: 'array', items: { type: 'number', minimum: 0, maximum: 0.999999 }, minItems: 2, maxItems: 2, default: [0.9, 0.999], description: "Adam's (beta1, beta2)." },
        lr_warm_up_steps: nonNegInt('Linear learning-rate warm-up from lr / lr_warm_up_steps.', { default: 0 }),
        lr_decay_steps: nonNegInt('Linear decay to 0 over the last lr_decay_steps.', { default: 0 }),
        max_grad_norm: { type: ['number', 'null'], exclusiveMinimum: 0, default: 1, description: 'clip_grad_norm_ max norm (SAELens clips at 1.0); null: no clipping.' },
        dead_feature_window: posInt('A feature is dead when it has not fired for more than this many steps.', { default: 1000 }),
        log_every: posInt('Metrics (MSE, L0, explained variance, dead features) every this many steps.', { default: 25 }),
      },
      additionalProperties: false,
    },
    corpus: { type: 'string', minLength: 1, default: 'builtin:book', description: "The text: a file or a folder of .txt / .md files (relative to this file), or 'builtin:book' (Moby-Dick, the built-in model's training text)." },
    context_size: posInt("Tokens per row of the corpus (default: the model's n_ctx, at most 128)."),
    prepend_bos: { type: 'boolean', description: "Put BOS before each row (default: the tokenizer's default); BOS positions are not trained on." },
    corpus_tokens: posInt('Read at most this many tokens of the corpus. Their activations are kept in memory (tokens × width × 4 bytes, at most 4 GiB); default: as many as fit in 1 GiB, at most 2,000,000 (all of Moby-Dick for builtin:default, 349,525 for a width of 768).'),
    eval_tokens: nonNegInt('Tokens at the end of the corpus held out of training, on which the saved SAE is measured.', { default: 16384 }),
    seed: nonNegInt('Seed of the initialisation and the batch order.', { default: 42 }),
    output: { type: 'string', minLength: 1, description: 'The SAE folder to write (relative to this file; default .mechlens/saes/<file name>/).' },
  },
  required: ['kind', 'hook', 'sae', 'training'],
  additionalProperties: false,
};
