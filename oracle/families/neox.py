"""GPT-NeoX / Pythia: parallel attention and MLP, partial rotary (rotary_pct < 1), LayerNorm,
untied unembedding, no BOS prepended by TransformerLens (default_prepend_bos False)."""

from transformers import GPTNeoXConfig

from oracle.fixture import Fixture


def _cfg(vocab: int) -> GPTNeoXConfig:
    return GPTNeoXConfig(
        vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        max_position_embeddings=32, rotary_pct=0.5, rotary_emb_base=10000, hidden_act="gelu",
        use_parallel_residual=True, layer_norm_eps=1e-5, tie_word_embeddings=False,
        attention_dropout=0.0, hidden_dropout=0.0, bos_token_id=vocab - 1, eos_token_id=vocab - 1,
    )


FIXTURES = [
    Fixture("neox-parallel-partial-rotary", "neox", "GPT-NeoX/Pythia: parallel attention+MLP, rotary on half of each head",
            "byte_level", _cfg, seed=4),
]
