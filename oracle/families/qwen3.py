"""Qwen3: Qwen2's block without q/k/v biases and with an RMSNorm over each head's query and key
(q_norm / k_norm, [d_head] gains shared by all heads, applied before rotary); head_dim is set
apart from hidden_size / num_attention_heads (as Qwen3's checkpoints do: 128 with 1024 / 16);
untied unembedding (as Qwen3-8B); TransformerLens caps n_ctx at 2048 and prepends no BOS."""

from transformers import Qwen3Config

from oracle.fixture import Fixture


def _cfg(vocab: int) -> Qwen3Config:
    return Qwen3Config(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=32,
        rms_norm_eps=1e-6, rope_theta=1000000.0, hidden_act="silu", tie_word_embeddings=False,
        attention_bias=False, use_sliding_window=False, attention_dropout=0.0,
        bos_token_id=vocab - 1, eos_token_id=vocab - 1, pad_token_id=None,
    )


FIXTURES = [
    Fixture("per-head-qk-norm", "qwen3", "Qwen3: RMSNorm on each query and key head before rotary, head_dim 16 != 32 / 4, 2 key-value heads, untied",
            "byte_level", _cfg, seed=9),
]
