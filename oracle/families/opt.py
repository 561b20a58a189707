"""OPT (OPTForCausalLM): learned positions stored with OPT's offset of 2 (embed_positions has
max_position_embeddings + 2 rows; TransformerLens drops the first two), pre-LayerNorm blocks
(do_layer_norm_before, the only layout TransformerLens converts), ReLU MLP (fc1 / fc2) with
biases, q/k/v/out projections with biases, tied unembedding without a bias, byte-level tokenizer.
word_embed_proj_dim equals hidden_size (TransformerLens has no project_in / project_out)."""

from transformers import OPTConfig

from oracle.fixture import Fixture


def _cfg(vocab: int) -> OPTConfig:
    return OPTConfig(
        vocab_size=vocab, max_position_embeddings=32, hidden_size=32, word_embed_proj_dim=32,
        num_hidden_layers=2, num_attention_heads=4, ffn_dim=48, activation_function="relu",
        do_layer_norm_before=True, enable_bias=True, layer_norm_elementwise_affine=True,
        dropout=0.0, attention_dropout=0.0, layerdrop=0.0, tie_word_embeddings=True,
        bos_token_id=vocab - 1, eos_token_id=vocab - 1, pad_token_id=vocab - 1,
    )


FIXTURES = [
    Fixture("learned-pos-offset-relu", "opt", "OPT: learned positions with an offset of 2, pre-LayerNorm, ReLU MLP of 48, biases everywhere, tied unembedding",
            "byte_level", _cfg, seed=17),
]
