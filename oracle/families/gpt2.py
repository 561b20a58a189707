"""GPT-2: learned positional embeddings, LayerNorm, plain MLP. Variants cover what a GPT-2
checkpoint on the hub can differ in: the `transformer.` key prefix, gelu_new vs exact gelu, and
tied vs untied unembedding."""

from transformers import GPT2Config

from oracle.fixture import Fixture


def _cfg(act: str, tied: bool):
    def make(vocab: int) -> GPT2Config:
        # n_ctx too: TransformerLens's config conversion reads it (transformers 5 dropped it from
        # GPT2Config; the official gpt2 config.json still has it). n_inner stays unset because
        # TransformerLens takes d_mlp = 4 * n_embd whatever n_inner says.
        return GPT2Config(
            vocab_size=vocab, n_positions=32, n_ctx=32, n_embd=32, n_layer=2, n_head=4,
            activation_function=act, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            layer_norm_epsilon=1e-5, tie_word_embeddings=tied,
            bos_token_id=vocab - 1, eos_token_id=vocab - 1,
        )
    return make


FIXTURES = [
    Fixture("gpt2-tied-gelu-new", "gpt2", "GPT-2 with weight names under transformer., gelu_new, tied unembedding",
            "byte_level", _cfg("gelu_new", True), seed=1),
    Fixture("gpt2-noprefix-gelu", "gpt2", "GPT-2 saved without the transformer. prefix (as the hub's gpt2 is), exact gelu, tied",
            "byte_level", _cfg("gelu", True), seed=2, strip_prefix="transformer."),
    Fixture("gpt2-untied", "gpt2", "GPT-2 with a separate lm_head (untied unembedding), gelu_new",
            "byte_level", _cfg("gelu_new", False), seed=3),
]
