"""TransformerLens configs for families whose config.json TransformerLens 3.9 cannot convert
(Gemma 1/2/3 and OLMo-2: it knows them only by official names; see oracle/README.md), and the
context in which TransformerLens's loader uses one. Shared by the fixture generator
(oracle/gen_models.py, through Fixture.tl_config) and the peer / scale bench (oracle/peer_bench.py,
by the checkpoint's architecture)."""

from __future__ import annotations

import contextlib
import pathlib
from typing import Any, Callable

import transformer_lens.loading_from_pretrained as tl_loading

from oracle.families import gemma, olmo2

#: config.json's architecture -> its TransformerLens config dict, given the HF config dict.
BY_ARCHITECTURE: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "GemmaForCausalLM": gemma.tl_gemma1,
    "Gemma2ForCausalLM": gemma.tl_gemma2,
    "Gemma3ForCausalLM": gemma.tl_gemma3,
    "Olmo2ForCausalLM": olmo2.tl_olmo2,
}


@contextlib.contextmanager
def tl_config_for(view: pathlib.Path | str, tl_config: Callable[[dict[str, Any]], dict[str, Any]] | None, hf_cfg: dict[str, Any]):
    """While loading a checkpoint whose family TransformerLens cannot convert from config.json
    (`tl_config` given), TransformerLens's convert_hf_model_config answers for the checkpoint's
    folder (`view`) with that config dict; any other name goes to TransformerLens's own function."""
    if tl_config is None:
        yield
        return
    original = tl_loading.convert_hf_model_config

    def convert(model_name: str, **kwargs: Any) -> dict[str, Any]:
        return dict(tl_config(hf_cfg)) if str(model_name) == str(view) else original(model_name, **kwargs)

    tl_loading.convert_hf_model_config = convert
    try:
        yield
    finally:
        tl_loading.convert_hf_model_config = original
