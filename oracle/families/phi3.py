"""Phi-3 (Phi3ForCausalLM): Llama's block with fused projections in the checkpoint (qkv_proj holds
Q|K|V rows, gate_up_proj holds gate|up rows; the conversion splits them), RMSNorm, SiLU-gated MLP,
full rotary, grouped-query attention (as Phi-3-medium), and a sliding window on every layer
(Phi-3-mini ships 2047 in a 4096 context; here 6, shorter than the prompts, so that it masks),
SentencePiece-style tokenizer with <s>."""

from transformers import Phi3Config

from oracle.fixture import Fixture


def _cfg(vocab: int) -> Phi3Config:
    return Phi3Config(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
        original_max_position_embeddings=32, rms_norm_eps=1e-5, rope_theta=10000.0,
        rope_scaling=None, sliding_window=6, hidden_act="silu", tie_word_embeddings=False,
        attention_dropout=0.0, resid_pdrop=0.0, embd_pdrop=0.0,
        bos_token_id=1, eos_token_id=2, pad_token_id=None,
    )


FIXTURES = [
    Fixture("fused-qkv-gate-up", "phi3", "Phi-3: fused qkv_proj and gate_up_proj split on load, 4 query / 2 key-value heads, sliding window of 6 keys",
            "sentencepiece", _cfg, vocab_size=400, seed=10),
]
