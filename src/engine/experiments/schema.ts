/**
 * The experiment file format (`*.experiment.json`): its TypeScript types and its JSON Schema
 * (draft-07). The schema object here is the single source: schemas/experiment.schema.json is
 * this object written out (a test keeps them equal), VS Code uses that file for completion and
 * hover, and the parser validates files against this object, so the editor and `mechlens run`
 * agree on what is valid.
 */
import { trainExperimentSchema } from './trainSchema.js';
import { saeTrainExperimentSchema } from './saeTrainSchema.js';
import type { Schema } from './jsonSchema.js';
export type { Schema } from './jsonSchema.js';

export type ModelRef = string | { name: string; processing?: 'none' | 'default' | 'default+refactor'; device?: 'auto' | 'cpu' | 'cuda'; offline?: boolean };

export interface PromptItem {
  prompt: string;
  corrupted?: string;
  answer?: string;
  wrong?: string;
}

export type PromptSource = PromptItem[] | { file: string; lines?: [number, number]; section?: string };

export interface HeadExpectation {
  top?: number[];
  tolerance?: number;
}

export interface CellExpectation {
  cells?: { at: number[]; value: number }[];
  tolerance?: number;
}

/** Numbers one group should reproduce, checked by its logit_diff and head_dla analyses. */
export interface GroupExpectation {
  logitDiff?: number;
  corrupted?: number;
  perPrompt?: number[];
  headDlaTop?: number[];
  tolerance?: number;
}

/** A head written L{layer}H{head}, e.g. "L7H11". */
export type HeadName = string;

export type AnalysisSpec = { title?: string } & (
  | { kind: 'test_prompt'; prompt?: number; text?: string; answer?: string; topK?: number }
  | { kind: 'logit_diff'; expect?: { clean?: number; corrupted?: number; perPrompt?: number[]; tolerance?: number } }
  | { kind: 'layer_dla' }
  | { kind: 'head_dla'; top?: number; expect?: HeadExpectation }
  | { kind: 'neuron_dla'; layer: number; top?: number }
  | { kind: 'logit_lens' }
  | { kind: 'attention'; heads?: HeadName[] | 'top_dla'; top?: number }
  | { kind: 'head_scores'; seqLen?: number; batch?: number; seed?: number; prependBos?: boolean; tokenRange?: [number, number]; errorMeasure?: 'mul' | 'abs'; excludeBos?: boolean; excludeCurrentToken?: boolean }
  | { kind: 'detect_heads'; pattern: 'previous_token_head' | 'duplicate_token_head' | 'induction_head'; errorMeasure?: 'mul' | 'abs'; excludeBos?: boolean; excludeCurrentToken?: boolean }
  | { kind: 'circuits'; heads: HeadName[] }
  | { kind: 'copying_scores' }
  | { kind: 'composition'; mode: 'Q' | 'K' | 'V' }
  | { kind: 'neuron_activations'; layer: number; neuron: number; text?: string; file?: string; top?: number; expect?: { max?: number; min?: number; tolerance?: number } }
  | { kind: 'ablation'; ablation?: 'mean' | 'zero'; loss?: 'next_token' | 'previous_token'; hooks?: string[] }
  | { kind: 'patch'; hook: 'resid_pre' | 'resid_mid' | 'resid_post' | 'attn_out' | 'mlp_out'; layers?: number[]; attribution?: boolean; expect?: CellExpectation }
  | { kind: 'patch_heads'; activation: 'z' | 'q' | 'k' | 'v' | 'pattern'; by?: 'all_pos' | 'pos'; layers?: number[]; attribution?: boolean; expect?: CellExpectation }
  | { kind: 'patch_neurons'; layer: number; hook?: 'post' | 'pre'; neurons?: number[]; top?: number; attribution?: boolean; expect?: CellExpectation }
  | { kind: 'causal_trace'; prompt?: number; subject: string | [number, number]; samples?: number; noise?: number; window?: number; kinds?: ('resid' | 'mlp' | 'attn')[]; seed?: number }
  | { kind: 'path_patch'; receivers: HeadName[] | 'logits'; input?: 'q' | 'k' | 'v'; direction?: 'denoise' | 'noise' }
  | { kind: 'sae_features'; sae: string; top?: number }
  | { kind: 'sae_ablate'; sae: string; features: number[]; ablation?: 'zero' | 'mean'; positions?: number[] }
  | { kind: 'sae_steer'; sae: string; feature: number; alpha: number; positions?: number[]; prompt?: number; generate?: number }
  | { kind: 'sae_attribution'; sae: string; top?: number }
);

export type AnalysisKind = AnalysisSpec['kind'];

export interface ExperimentFile {
  $schema?: string;
  kind?: 'analysis';
  title?: string;
  description?: string;
  model: ModelRef;
  prependBos?: boolean;
  prompts?: PromptSource;
  groups?: { name: string; prompts: PromptSource; expect?: GroupExpectation }[];
  metric?: 'logit_diff' | 'answer_prob' | 'answer_logprob';
  normalize?: boolean;
  analyses: AnalysisSpec[];
  saes?: { sae: string; errorTerm?: boolean }[];
}


const int = (description: string, minimum = 0, extra: Partial<Schema> = {}): Schema => ({ type: 'integer', minimum, description, ...extra });
const bool = (description: string, dflt: boolean): Schema => ({ type: 'boolean', description, default: dflt });

const HEAD_PATTERN = '^L(0|[1-9][0-9]*)H(0|[1-9][0-9]*)$';

function analysis(kind: AnalysisKind, description: string, properties: Record<string, Schema> = {}, required: string[] = []): Schema {
  return {
    type: 'object',
    description,
    properties: {
      kind: { const: kind, description },
      title: { type: 'string', description: 'Heading of this result in the run and the report (default: generated from the analysis).' },
      ...properties,
    },
    required: ['kind', ...required],
    additionalProperties: false,
  };
}

const cellExpect: Schema = {
  type: 'object',
  description: 'Numbers this analysis should reproduce (e.g. from a paper or notebook); the run reports each check as passed or failed.',
  properties: {
    cells: {
      type: 'array',
      description: 'Expected values of single cells of the result.',
      items: {
        type: 'object',
        properties: {
          at: { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 1, description: 'Index of the cell in the result, in its axis order (e.g. [layer, pos] or [layer, head]; for neurons [neuron]).' },
          value: { type: 'number', description: 'Expected value.' },
        },
        required: ['at', 'value'],
        additionalProperties: false,
      },
    },
    tolerance: { type: 'number', exclusiveMinimum: 0, default: 0.001, description: 'Largest accepted |actual - expected|.' },
  },
  additionalProperties: false,
};

const promptItem: Schema = {
  type: 'object',
  description: 'One prompt; for patching, a clean prompt and its corrupted counterpart of the same token length.',
  properties: {
    prompt: { type: 'string', minLength: 1, description: 'The (clean) prompt.' },
    corrupted: { type: 'string', minLength: 1, description: 'The corrupted prompt (same number of tokens), for activation patching.' },
    answer: { type: 'string', minLength: 1, description: 'Expected next token, one token, usually with its leading space (" Mary").' },
    wrong: { type: 'string', minLength: 1, description: 'The wrong answer the logit difference is taken against (one token).' },
  },
  required: ['prompt'],
  additionalProperties: false,
};

const promptSource: Schema = {
  description: 'Prompts: a list of {prompt, corrupted, answer, wrong} objects, or a .prompts file (lines `CLEAN => CORRUPTED -> "answer" | "wrong"`).',
  anyOf: [
    { type: 'array', minItems: 1, items: promptItem },
    {
      type: 'object',
      properties: {
        file: { type: 'string', minLength: 1, pattern: '\\.prompts$', description: 'A .prompts file, relative to this experiment file.' },
        lines: { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 2, maxItems: 2, description: 'Only entries on these lines, [first, last], 1-based and inclusive as the editor numbers them.' },
        section: { type: 'string', minLength: 1, description: 'Only entries under the comment line `## <section>` (up to the next `##` line).' },
      },
      required: ['file'],
      additionalProperties: false,
    },
  ],
};

// Attribution patching (analysis/attribution.ts) estimates the same cells from one backward pass;
// it covers resid_pre / attn_out / mlp_out, heads across all positions and neurons' hook_post.
const attribution = bool('Also estimate this sweep with attribution patching (one forward and one backward pass, a linear approximation) and show it beside the exact result with their correlation. For resid_pre / attn_out / mlp_out, heads over all positions and hook_post neurons, with metric logit_diff.', false);

const saeRef: Schema = {
  type: 'string',
  minLength: 1,
  description: "The SAE in SAELens's format: a folder with cfg.json and sae_weights.safetensors (relative to this file, starting with ./), or a folder of a Hugging Face release repository, org/name/<folder> (read from the local HF cache, downloaded unless the model is offline).",
  examples: ['./saes/blocks.1.hook_resid_post', 'org/gpt2-small-res-saes/blocks.8.hook_resid_pre'],
};

const layers: Schema = { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 1, description: 'Only these layers (default: every layer).' };

/** An analysis experiment (every file without "kind": "train"). */
export const analysisExperimentSchema: Schema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://mechlens.dev/schemas/experiment.schema.json',
  title: 'MechLens experiment',
  description: 'A reproducible interpretability experiment: a model, prompts (clean / corrupted pairs with answers), a metric and a list of analyses. Run it with `mechlens run FILE.experiment.json` or from the editor; results go to .mechlens/runs/<id>/.',
  type: 'object',
  properties: {
    $schema: { type: 'string', description: 'Path or URL of this schema, for editors.' },
    kind: { enum: ['analysis', 'train', 'train_sae'], default: 'analysis', description: "'analysis' (the default): analyses of a model on prompts; 'train': train a toy transformer, then analyse it; 'train_sae': train a sparse autoencoder on a hook's activations." },
    title: { type: 'string', description: 'Title of the experiment (shown in the runs list and the report).' },
    description: { type: 'string', description: 'What the experiment tests and where its prompts come from.' },
    model: {
      description: 'The model: a Hugging Face id ("gpt2", read from the local HF cache or downloaded), a model folder (relative to this file) with config.json and model.safetensors, or "builtin:toy".',
      anyOf: [
        { type: 'string', minLength: 1, examples: ['gpt2', 'builtin:toy', './models/my-gpt2'] },
        {
          type: 'object',
          properties: {
            name: { type: 'string', minLength: 1, description: 'Hugging Face id, model folder (relative to this file) or builtin:toy.' },
            processing: { enum: ['none', 'default', 'default+refactor'], default: 'default', description: "TransformerLens weight processing: 'default' = fold_ln, center_writing_weights, center_unembed (HookedTransformer.from_pretrained's defaults); 'default+refactor' also refactor_factored_attn_matrices; 'none' = the raw weights." },
            device: { enum: ['auto', 'cpu', 'cuda'], default: 'cpu', description: 'Where onnxruntime runs the model.' },
            offline: bool('Never download: the model must be in the local Hugging Face cache or a folder.', false),
          },
          required: ['name'],
          additionalProperties: false,
        },
      ],
    },
    // No default in the schema: absent means the model family's TransformerLens default_prepend_bos.
    prependBos: {
      type: 'boolean',
      description: "Prepend the BOS token to every prompt. Absent: the model family's TransformerLens default (true for GPT-2 and Llama, false for GPT-NeoX/Pythia, Qwen and Phi-2).",
    },
    prompts: promptSource,
    groups: {
      type: 'array',
      minItems: 1,
      description: 'Several prompt groups (e.g. one per contraction/pronoun pairing); every analysis runs on each group separately.',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string', minLength: 1, description: 'Name of the group, shown in titles.' },
          prompts: promptSource,
          expect: {
            type: 'object',
            description: "Numbers this group should reproduce (checked by the group's logit_diff and head_dla analyses).",
            properties: {
              logitDiff: { type: 'number', description: 'Expected average clean logit difference.' },
              corrupted: { type: 'number', description: 'Expected average corrupted logit difference.' },
              perPrompt: { type: 'array', items: { type: 'number' }, description: 'Expected clean logit difference of each prompt.' },
              headDlaTop: { type: 'array', items: { type: 'number' }, description: 'Expected top head attributions, largest first.' },
              tolerance: { type: 'number', exclusiveMinimum: 0, default: 0.0005, description: 'Largest accepted |actual - expected|.' },
            },
            additionalProperties: false,
          },
        },
        required: ['name', 'prompts'],
        additionalProperties: false,
      },
    },
    metric: {
      enum: ['logit_diff', 'answer_prob', 'answer_logprob'],
      default: 'logit_diff',
      description: "What patching measures at the last position: 'logit_diff' = mean over prompts of logit(answer) - logit(wrong); 'answer_prob' / 'answer_logprob' = mean probability / log-probability of the answer.",
    },
    normalize: bool('Report patching results normalised as (patched - corrupted) / (clean - corrupted): 1 = clean behaviour restored, 0 = no effect.', true),
    saes: {
      type: 'array',
      minItems: 1,
      description: "SAEs or transcoders spliced into the model for every analysis of this experiment (as SAELens's HookedSAETransformer.add_sae): their hooks (<hook>.hook_sae_acts_post, ...) exist in every run. Attribution patching runs without them and says so.",
      items: {
        type: 'object',
        properties: {
          sae: { type: 'string', minLength: 1, description: "The SAE in SAELens's format: a folder (relative to this file, starting with ./) or a hub release folder org/name/<folder>." },
          errorTerm: bool("Add the error term, so that the model's output is unchanged and only edits of the features change it.", false),
        },
        required: ['sae'],
        additionalProperties: false,
      },
    },
    analyses: {
      type: 'array',
      minItems: 1,
      description: 'The analyses to run, in order.',
      items: { anyOf: [] },
    },
  },
  required: ['model', 'analyses'],
  additionalProperties: false,
};

const analyses: Schema[] = [
  analysis('test_prompt', "TransformerLens test_prompt: the top predictions after a prompt and the answer's rank.", {
    prompt: int('Index of the prompt (0 = the first).'),
    text: { type: 'string', minLength: 1, description: "A prompt of its own instead of one of the experiment's." },
    answer: { type: 'string', minLength: 1, description: 'With text: the expected answer (one token), whose rank is shown.' },
    topK: int('How many top tokens to list.', 1, { default: 10 }),
  }),
  analysis('logit_diff', 'Logit difference logit(answer) - logit(wrong) at the last position, per prompt and averaged, for the clean and the corrupted prompts.', {
    expect: {
      type: 'object',
      description: 'Numbers to reproduce (e.g. the seed notebook\'s); each is reported as passed or failed.',
      properties: {
        clean: { type: 'number', description: 'Expected average clean logit difference.' },
        corrupted: { type: 'number', description: 'Expected average corrupted logit difference.' },
        perPrompt: { type: 'array', items: { type: 'number' }, description: 'Expected clean logit difference of each prompt.' },
        tolerance: { type: 'number', exclusiveMinimum: 0, default: 0.0005, description: 'Largest accepted |actual - expected|.' },
      },
      additionalProperties: false,
    },
  }),
  analysis('layer_dla', 'Direct logit attribution of each residual component (embed, pos_embed, each attn_out and mlp_out) to the logit difference (TransformerLens decompose_resid + apply_ln_to_stack).'),
  analysis('head_dla', 'Direct logit attribution of every attention head to the logit difference (stack_head_results), as a layer x head heatmap.', {
    top: int('How many top heads to list.', 1, { default: 3 }),
    expect: {
      type: 'object',
      description: 'Expected values of the top heads.',
      properties: {
        top: { type: 'array', items: { type: 'number' }, description: 'Expected top head attributions, largest first (torch.topk values).' },
        tolerance: { type: 'number', exclusiveMinimum: 0, default: 0.0005, description: 'Largest accepted |actual - expected|.' },
      },
      additionalProperties: false,
    },
  }),
  analysis('neuron_dla', "Direct logit attribution of every neuron of one layer's MLP.", { layer: int('The MLP layer.'), top: int('How many top neurons to list.', 1, { default: 10 }) }, ['layer']),
  analysis('logit_lens', 'Logit lens: the logit difference read from the accumulated residual stream before and after every layer (accumulated_resid, incl_mid).'),
  analysis('attention', 'Attention patterns of heads (mean over the prompts), query x key, on the tokens of the first prompt.', {
    heads: {
      anyOf: [
        { type: 'array', minItems: 1, items: { type: 'string', pattern: HEAD_PATTERN }, description: 'Heads as L{layer}H{head}, e.g. ["L7H11", "L10H1"].' },
        { const: 'top_dla', description: 'The heads with the largest and smallest direct logit attribution.' },
      ],
      default: 'top_dla',
      description: 'Which heads to show.',
    },
    top: int('With top_dla: how many positive and negative heads.', 1, { default: 3 }),
  }),
  analysis('head_scores', 'Previous-token, duplicate-token and induction scores of every head on repeated random tokens (TransformerLens head_detector and the induction score of the Main Demo), and the loss by position.', {
    seqLen: int('Length of the random sequence that is repeated.', 2, { default: 50 }),
    batch: int('Number of random sequences.', 1, { default: 10 }),
    seed: int('Seed of the random tokens.', 0, { default: 0 }),
    prependBos: bool('Prepend BOS to the repeated tokens.', false),
    tokenRange: { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 2, maxItems: 2, description: 'Random token ids are drawn from [lo, hi) (default 1000..10000 for GPT-2-sized vocabularies, else the whole vocabulary).' },
    errorMeasure: { enum: ['mul', 'abs'], default: 'mul', description: "head_detector's error measure." },
    excludeBos: bool('Ignore attention to position 0.', false),
    excludeCurrentToken: bool("Ignore attention to the query's own position.", false),
  }),
  analysis('detect_heads', "TransformerLens detect_head on this experiment's (clean) prompts.", {
    pattern: { enum: ['previous_token_head', 'duplicate_token_head', 'induction_head'], description: 'The detection pattern.' },
    errorMeasure: { enum: ['mul', 'abs'], default: 'mul', description: "head_detector's error measure." },
    excludeBos: bool('Ignore attention to position 0.', false),
    excludeCurrentToken: bool("Ignore attention to the query's own position.", false),
  }, ['pattern']),
  analysis('circuits', "QK and OV circuits of heads: the full QK circuit W_E W_Q W_Kᵀ W_Eᵀ and full OV circuit W_E W_V W_O W_U on the first prompt's tokens, and the OV circuit's copying score.", {
    heads: { type: 'array', minItems: 1, items: { type: 'string', pattern: HEAD_PATTERN }, description: 'Heads as L{layer}H{head}.' },
  }, ['heads']),
  analysis('copying_scores', "Copying score (Σλ / Σ|λ| of the full OV circuit's eigenvalues) of every head."),
  analysis('composition', 'Composition scores between every pair of heads in different layers (TransformerLens all_composition_scores).', {
    mode: { enum: ['Q', 'K', 'V'], description: 'Q-, K- or V-composition of an earlier head\'s OV output into a later head.' },
  }, ['mode']),
  analysis('neuron_activations', "A neuron's activation on every token of a text (neuroscope-style), or its max-activating lines across a file.", {
    layer: int('The MLP layer.'),
    neuron: int('The neuron (index into d_mlp).'),
    text: { type: 'string', minLength: 1, description: 'Text to color (default: the first prompt).' },
    file: { type: 'string', minLength: 1, description: 'A text file (relative to this experiment file): its lines are ranked by the neuron\'s largest activation.' },
    top: int('With file: how many lines to keep.', 1, { default: 10 }),
    expect: {
      type: 'object',
      description: 'Expected largest and smallest activation on the text (the first one when several).',
      properties: {
        max: { type: 'number', description: 'Expected largest activation.' },
        min: { type: 'number', description: 'Expected smallest activation.' },
        tolerance: { type: 'number', exclusiveMinimum: 0, default: 0.0005, description: 'Largest accepted |actual - expected|.' },
      },
      additionalProperties: false,
    },
  }, ['layer', 'neuron']),
  analysis('ablation', 'Ablate every hook in turn (mean over the prompts, or zero) and measure the loss (the no-positional-embedding experiment, step 7).', {
    ablation: { enum: ['mean', 'zero'], default: 'mean', description: 'Replace each activation by its mean over the prompts, or by zero.' },
    loss: { enum: ['next_token', 'previous_token'], default: 'next_token', description: "'next_token': TransformerLens's language-model loss; 'previous_token': the no-positional-embedding experiment's task (position t predicts token t-1)." },
    hooks: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 }, description: 'Full hook names to ablate (default: every hook except hook_pos_embed and hook_result).' },
  }),
  analysis('patch', 'Activation patching of a residual-stream component by layer and position: clean values patched into the corrupted run (TransformerLens get_act_patch_resid_pre / attn_out / mlp_out).', {
    hook: { enum: ['resid_pre', 'resid_mid', 'resid_post', 'attn_out', 'mlp_out'], description: 'The component patched: blocks.L.hook_<hook>.' },
    layers,
    attribution,
    expect: cellExpect,
  }, ['hook']),
  analysis('patch_heads', "Activation patching of each head's z (output), q, k, v or attention pattern, across all positions or by position.", {
    activation: { enum: ['z', 'q', 'k', 'v', 'pattern'], description: 'blocks.L.attn.hook_<activation>.' },
    by: { enum: ['all_pos', 'pos'], default: 'all_pos', description: "'all_pos': one cell per head ([layer, head]); 'pos': per position ([layer, pos, head]; for pattern per destination position [layer, head, dest_pos])." },
    layers,
    attribution,
    expect: cellExpect,
  }, ['activation']),
  analysis('patch_neurons', 'Activation patching of single MLP neurons of one layer, all positions (the contraction-circuit study: layers 8 and 10).', {
    layer: int('The MLP layer.'),
    hook: { enum: ['post', 'pre'], default: 'post', description: 'blocks.L.mlp.hook_<hook>.' },
    neurons: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 }, description: 'Only these neurons (default: all).' },
    top: int('How many neurons with the largest |effect| to list.', 1, { default: 10 }),
    attribution,
    expect: cellExpect,
  }, ['layer']),
  analysis('causal_trace', "Causal tracing in ROME's style: noise on the subject's token embeddings, then restore each layer's hidden state (and windows of MLP / attention outputs) at each token.", {
    prompt: int('Index of the prompt traced (0 = the first).'),
    subject: {
      anyOf: [
        { type: 'string', minLength: 1, description: 'The subject as it appears in the prompt, e.g. "The Eiffel Tower".' },
        { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 2, maxItems: 2, description: 'Token positions [start, end) of the subject (BOS counted).' },
      ],
      description: 'Whose token embeddings are noised.',
    },
    samples: int('Noisy runs averaged.', 1, { default: 10 }),
    noise: { type: 'number', exclusiveMinimum: 0, description: "Standard deviation of the noise (default 3 x the std of W_E's entries)." },
    window: int('Layers restored together for mlp / attn.', 1, { default: 10 }),
    kinds: { type: 'array', items: { enum: ['resid', 'mlp', 'attn'] }, minItems: 1, description: 'Which states to restore (default all three; resid and attn for an attention-only model).' },
    seed: int('Seed of the noise.', 0, { default: 1 }),
  }, ['subject']),
  analysis('path_patch', 'Path patching: the effect of each sender head through a path to receiver heads (their q, k or v) or directly to the logits (Wang et al. 2022).', {
    receivers: {
      anyOf: [
        { type: 'array', minItems: 1, items: { type: 'string', pattern: HEAD_PATTERN }, description: 'Receiver heads as L{layer}H{head}.' },
        { const: 'logits', description: 'The direct path to the logits.' },
      ],
      description: 'Where the path ends.',
    },
    input: { enum: ['q', 'k', 'v'], default: 'v', description: "The receivers' input that carries the path." },
    direction: { enum: ['denoise', 'noise'], default: 'denoise', description: "'denoise': senders from the clean run into the corrupted run (like the other patching analyses); 'noise': senders from the corrupted run into the clean run (ARENA's convention)." },
  }, ['receivers']),
  analysis('sae_features', "A sparse autoencoder's (or transcoder's) features on every token of the prompts: the most active features per token, the mean number active (L0) and how much of the activation the reconstruction explains. The SAE is spliced with its error term, so the model's run is unchanged.", {
    sae: saeRef,
    top: int('Features listed per token.', 1, { default: 5 }),
  }, ['sae']),
  analysis('sae_ablate', "Ablate SAE features (to zero, or to each feature's mean over the prompts' tokens) and measure the effect: the metric when every prompt has answers, and the next-token loss. The error term keeps everything the SAE does not explain, so only the features' contribution changes.", {
    sae: saeRef,
    features: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 }, description: 'Feature indices (0 .. d_sae - 1).' },
    ablation: { enum: ['zero', 'mean'], default: 'zero', description: "'zero', or 'mean': each feature's mean activation over every token of the prompts." },
    positions: { type: 'array', minItems: 1, items: { type: 'integer' }, description: 'Only these positions (negative: from the end; BOS counted). Default: every position.' },
  }, ['sae', 'features']),
  analysis('sae_steer', "Steer with a feature: add alpha x its decoder direction at the SAE's output hook over chosen positions, and show the top predictions and a greedy continuation before and after.", {
    sae: saeRef,
    feature: int('The feature whose decoder direction (row of W_dec) is added.'),
    alpha: { type: 'number', description: 'Multiple of the decoder direction added (negative steers away).' },
    positions: { type: 'array', minItems: 1, items: { type: 'integer' }, description: 'Only these positions (negative: from the end). Default: every position, generated tokens included.' },
    prompt: int('Index of the prompt steered (0 = the first).'),
    generate: int('Tokens generated greedily before and after (0: predictions only).', 0, { default: 10, maximum: 256 }),
  }, ['sae', 'feature', 'alpha']),
  analysis('sae_attribution', "Attribution patching over SAE features: for every feature at every position, gradient x (clean - corrupted activation) estimates how much patching that feature from the clean run into the corrupted run changes the logit difference (one backward pass); the cells with the largest estimates are also patched exactly, beside their estimates. The SAE is spliced with its error term. Needs corrupted prompts, answers and wrong answers, and metric logit_diff.", {
    sae: saeRef,
    top: int('Cells (feature, position) with the largest |estimate| patched exactly, one corrupted run each (0: estimates only).', 0, { default: 10, maximum: 200 }),
  }, ['sae']),
];
(analysisExperimentSchema.properties!['analyses']!.items as Schema).anyOf = analyses;

/** Kinds that patch clean activations into corrupted runs (they need corrupted prompts). */
export const PATCHING_KINDS: ReadonlySet<AnalysisKind> = new Set(['patch', 'patch_heads', 'patch_neurons', 'path_patch', 'sae_attribution']);
/** Kinds that need answers (a logit difference or the answer's probability). */
export const ANSWER_KINDS: ReadonlySet<AnalysisKind> = new Set(['logit_diff', 'layer_dla', 'head_dla', 'neuron_dla', 'logit_lens', 'patch', 'patch_heads', 'patch_neurons', 'path_patch', 'sae_attribution']);

/**
 * schemas/experiment.schema.json: both kinds of experiment file, chosen by "kind" ("train", or
 * absent / "analysis"). Editors read the draft-07 if/then/else; parse.ts validates a file against
 * the one definition its "kind" names, so messages concern that kind only.
 */
export const experimentSchema: Schema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: analysisExperimentSchema.$id!,
  title: 'MechLens experiment',
  description: 'A MechLens experiment file: analyses of a model on prompts (the default), or "kind": "train" to train a toy transformer and analyse it. Results go to .mechlens/runs/<id>/.',
  type: 'object',
  properties: {
    kind: analysisExperimentSchema.properties!['kind']!,
    title: { type: 'string', description: 'Title of the experiment.' },
    description: { type: 'string', description: 'What the experiment does.' },
  },
  if: { properties: { kind: { const: 'train' } }, required: ['kind'] },
  then: { $ref: '#/definitions/train' },
  else: {
    if: { properties: { kind: { const: 'train_sae' } }, required: ['kind'] },
    then: { $ref: '#/definitions/train_sae' },
    else: { $ref: '#/definitions/analysis' },
  },
  definitions: {
    analysis: Object.fromEntries(Object.entries(analysisExperimentSchema).filter(([k]) => k !== '$schema' && k !== '$id')) as Schema,
    train: trainExperimentSchema,
    train_sae: saeTrainExperimentSchema,
  },
};
