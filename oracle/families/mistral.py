"""Mistral: Llama's block with a sliding attention window; the window (4) is shorter than the
prompts so that it masks keys."""

from transformers import MistralConfig

from oracle.fixture import Fixture


def _cfg(vocab: int) -> MistralConfig:
    return MistralConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=32,
        rms_norm_eps=1e-5, rope_theta=10000.0, sliding_window=4, hidden_act="silu",
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=None,
    )


FIXTURES = [
    Fixture("mistral-sliding-window", "mistral", "Mistral: as the Llama block, plus a sliding window of 4 keys (prompts are longer)",
            "sentencepiece", _cfg, vocab_size=400, seed=7),
]
