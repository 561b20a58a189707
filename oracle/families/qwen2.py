"""Qwen2 / Qwen2.5 (and Qwen1.5, which shares the architecture): Llama's block with biases on the
q/k/v projections (none on o_proj or the MLP), a large rotary base (10^6, as Qwen2.5 ships),
grouped-query attention, tied unembedding (as Qwen2.5-0.5B/1.5B/3B), byte-level BPE without BOS
(TransformerLens's default_prepend_bos is False for this family)."""

from transformers import Qwen2Config

from oracle.fixture import Fixture


def _cfg(vocab: int) -> Qwen2Config:
    return Qwen2Config(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
        rms_norm_eps=1e-6, rope_theta=1000000.0, hidden_act="silu", tie_word_embeddings=True,
        use_sliding_window=False, attention_dropout=0.0,
        bos_token_id=vocab - 1, eos_token_id=vocab - 1, pad_token_id=None,
    )


FIXTURES = [
    Fixture("qkv-bias-gqa-tied", "qwen2", "Qwen2/Qwen2.5: q/k/v biases, rotary base 1e6, 4 query / 2 key-value heads, tied unembedding, no BOS",
            "byte_level", _cfg, seed=8),
]
