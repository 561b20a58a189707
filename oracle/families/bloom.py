"""BLOOM (BloomForCausalLM): no positional embedding; ALiBi adds -m_h * (query_pos - key_pos) to
each head's attention scores (m_h = 2^(-8 (h + 1) / n_heads); 4 heads, a power of two, where
TransformerLens's slopes equal HF's), a LayerNorm right after the token embedding
(word_embeddings_layernorm; TransformerLens's embed.ln), a fused query_key_value projection
interleaved per head ([head, q/k/v, d_head]) with biases, GELU (tanh form) MLP of 4 * hidden_size,
tied unembedding without a bias, byte-level tokenizer, no BOS prepended by default."""

from transformers import BloomConfig

from oracle.fixture import Fixture


def _cfg(vocab: int) -> BloomConfig:
    return BloomConfig(
        vocab_size=vocab, hidden_size=32, n_layer=2, n_head=4, layer_norm_epsilon=1e-5,
        apply_residual_connection_post_layernorm=False, hidden_dropout=0.0, attention_dropout=0.0,
        pretraining_tp=1, slow_but_exact=False, tie_word_embeddings=True,
        bos_token_id=vocab - 1, eos_token_id=vocab - 1, pad_token_id=vocab - 1,
    )


FIXTURES = [
    Fixture("alibi-embed-ln", "bloom", "BLOOM: ALiBi attention bias (4 heads), LayerNorm after the embedding, fused per-head qkv with biases, tied unembedding, no BOS",
            "byte_level", _cfg, seed=17),
]
