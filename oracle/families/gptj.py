"""GPT-J (GPTJForCausalLM): attention and MLP in parallel off one LayerNorm (ln_1; TransformerLens
ties ln2 to it), rotary on the first rotary_dim dims of each head in GPT-J's interleaved
(adjacent-pairs) layout, gelu_new MLP with biases, no q/k/v/o biases, an unembedding with a bias,
untied, byte-level tokenizer."""

from transformers import GPTJConfig

from oracle.fixture import Fixture


def _cfg(vocab: int) -> GPTJConfig:
    return GPTJConfig(
        vocab_size=vocab, n_positions=32, n_embd=32, n_layer=2, n_head=4, rotary_dim=4,
        activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        layer_norm_epsilon=1e-5, tie_word_embeddings=False,
        bos_token_id=vocab - 1, eos_token_id=vocab - 1,
    )


FIXTURES = [
    Fixture("parallel-interleaved-rotary", "gptj", "GPT-J: parallel attention+MLP off one LayerNorm, interleaved rotary on 4 of 8 head dims, unembedding bias",
            "byte_level", _cfg, seed=11),
]
