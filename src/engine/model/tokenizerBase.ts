/**
 * The tokenizer interface shared by every tokenizer kind (GPT-2 via js-tiktoken, tokenizer.json
 * via @huggingface/tokenizers, characters, integer ids). Its own module so that the
 * implementations can import it without importing each other.
 */
export type TokenizerKind = 'gpt2-bpe' | 'hf' | 'char' | 'ids';

export interface Tokenizer {
  kind: TokenizerKind;
  /** Number of distinct token ids; valid ids are 0 .. vocabSize-1. */
  vocabSize: number;
  bosTokenId: number | null;
  eosTokenId: number | null;
  padTokenId: number | null;
  /** Text -> ids [pos]. Never adds BOS: that is toTokens's job, as in TransformerLens. */
  encode(text: string): number[];
  /** ids [pos] -> text, special tokens included (TransformerLens decodes without skipping them). */
  decode(ids: number[]): string;
  /** The text of one token, as TransformerLens's to_str_tokens shows it. */
  idToString(id: number): string;
  /**
   * TransformerLens's cfg.default_prepend_bos for the model family (false for GPT-NeoX/Pythia,
   * Qwen, Phi-2); toTokens uses it when prependBos is not given. Absent = true.
   */
  defaultPrependBos?: boolean;
  /**
   * TransformerLens's to_tokens for one string when BOS handling is more than "prepend the BOS
   * id" (tokenizers that add BOS themselves, or prepend it as text): ids [pos].
   */
  toModelTokens?(text: string, prependBos: boolean): number[];
}

export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

