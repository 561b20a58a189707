"""GPT-Neo: GPT-2's block with nn.Linear projections, attention scores not divided by sqrt(d_head),
and alternating global / local layers (layer 0 global, layer 1 a sliding window of 4 keys, shorter
than the prompts). TransformerLens takes d_mlp = 4 * hidden_size (intermediate_size stays unset)."""

from transformers import GPTNeoConfig

from oracle.fixture import Fixture


def _cfg(vocab: int) -> GPTNeoConfig:
    return GPTNeoConfig(
        vocab_size=vocab, max_position_embeddings=32, hidden_size=32, num_layers=2, num_heads=4,
        attention_types=[[["global", "local"], 1]], window_size=4, activation_function="gelu_new",
        resid_dropout=0.0, embed_dropout=0.0, attention_dropout=0.0, layer_norm_epsilon=1e-5,
        tie_word_embeddings=True, bos_token_id=vocab - 1, eos_token_id=vocab - 1,
    )


FIXTURES = [
    Fixture("neo-unscaled-local", "gptneo", "GPT-Neo: unscaled attention scores, layer 0 global, layer 1 local (window 4), tied unembedding",
            "byte_level", _cfg, seed=10),
]
