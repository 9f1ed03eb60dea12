"""Weights in safetensors with the model config and tokenizer hash in the header.

Loading weights made with another tokenizer would silently scramble every embedding row, so
``load_checkpoint`` refuses it and says which tokenizers differ.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors import safe_open
from safetensors.torch import load_model, save_model

from shared_model.adapters import AdapterSpec, add_adapters, merged
from shared_model.config import ModelConfig, get_preset
from shared_model.errors import CheckpointError
from shared_model.model import M3FM, build_model
from shared_model.tokenizer import DEFAULT_TOKENIZER, SharedTokenizer, load_tokenizer

FORMAT = "m3fed.checkpoint/1"


def save_checkpoint(path: str | Path, model: M3FM, *, extra: dict | None = None) -> None:
    """``extra`` goes into the header beside the config, the tokenizer's identity, the text model's
    directory (where its tokenizer is) and the adapters (``lora:R``; "" for a plain model)."""
    meta = {"format": FORMAT, "model_config": model.cfg.to_dict(), "tokenizer_sha256": model.tokenizer.sha256,
            "tokenizer_file": model.tokenizer.name, "text_model": model.text_model,
            "adapter": str(model.adapter or ""), **(extra or {})}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # save_model drops tied copies (the decoder's input and output embeddings share storage).
    save_model(model, str(path), metadata={"m3fed": json.dumps(meta)})


def read_metadata(path: str | Path) -> dict:
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get("m3fed")
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    if raw is None:
        raise CheckpointError(f"{path}: no m3fed metadata (not an m3fed checkpoint)")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format')!r}, expected {FORMAT}")
    return meta


def check_tokenizer(meta: dict, tokenizer: SharedTokenizer, path: str | Path) -> None:
    if meta["tokenizer_sha256"] != tokenizer.sha256:
        raise CheckpointError(
            f"{path}: made with tokenizer {meta.get('tokenizer_file')} sha256 {meta['tokenizer_sha256'][:12]}…, "
            f"but this site uses {tokenizer.name} sha256 {tokenizer.sha256[:12]}…; refusing to load weights "
            "trained on another vocabulary")


def load_checkpoint(path: str | Path, *, tokenizer: SharedTokenizer | None = None,
                    text_model: str | Path | None = None) -> tuple[M3FM, dict]:
    """The model in ``path``, adapters included. A checkpoint made with a --text-model needs its
    directory (for the tokenizer): ``text_model``, or where the header says it was."""
    meta = read_metadata(path)
    text_model = text_model or meta.get("text_model") or None
    if text_model and not Path(text_model).is_dir():
        raise CheckpointError(f"{path}: made with the text model {text_model} (tokenizer sha256 "
                              f"{meta['tokenizer_sha256'][:12]}…), which is not here; pass its directory (--text-model)")
    tokenizer = tokenizer or load_tokenizer(text_model or DEFAULT_TOKENIZER)
    check_tokenizer(meta, tokenizer, path)
    model = build_model(ModelConfig.from_dict(meta["model_config"]), tokenizer=tokenizer, text_model=text_model,
                        pretrained_text=False, adapter=AdapterSpec.parse(meta.get("adapter", "")))
    load_model(model, str(path))
    return model, meta


def load_weights_into(model: M3FM, path: str | Path) -> dict:
    """Initialise ``model`` from a checkpoint of the same config, tokenizer and adapters (e.g. pretrained weights)."""
    meta = read_metadata(path)
    check_tokenizer(meta, model.tokenizer, path)
    check_model_config(meta, model.cfg, path)
    if meta.get("adapter", "") != str(model.adapter or ""):
        raise CheckpointError(f"{path}: has adapters {meta.get('adapter') or 'none'}, this model "
                              f"{model.adapter or 'none'}" + ("; start from its merged export (model-merged.safetensors)"
                                                               if meta.get("adapter") else ""))
    load_model(model, str(path))
    return meta


def check_model_config(meta: dict, cfg: ModelConfig, path: str | Path) -> None:
    """Refuse a checkpoint made for other model sizes, naming every field that differs."""
    theirs, ours = ModelConfig.from_dict(meta["model_config"]).to_dict(), cfg.to_dict()
    if theirs != ours:
        diff = ", ".join(f"{k} {theirs.get(k)!r} (this run: {ours.get(k)!r})" for k in sorted(set(theirs) | set(ours))
                         if theirs.get(k) != ours.get(k))
        raise CheckpointError(f"{path}: made for another model config: {diff}")


@dataclass(frozen=True, kw_only=True)
class ModelSource:
    """Where a run's model comes from: the preset, local pretrained files, a start checkpoint, adapters.

    The server, every site and the pooled / single-site baselines build from the same source, so
    they hold the same architecture and (``initial``) the same starting weights.
    """

    preset: str = "tiny"
    text_model: str = ""  # a local Hugging Face encoder directory: text tower and tokenizer
    vit_weights: str = ""  # local timm ViT weights for the image tower
    init: str = ""  # an m3fed checkpoint (plain model) the run starts from; overrides the two above
    adapter: str = ""  # "" (the full model trains) or lora:R

    @classmethod
    def from_run(cls, run) -> "ModelSource":
        """From a ``shared_model.run_config.RunConfig``."""
        return cls(preset=run.preset, text_model=run.text_model, vit_weights=run.vit_weights,
                   init=run.init_checkpoint, adapter=run.adapter)

    def config(self) -> ModelConfig:
        cfg = get_preset(self.preset)
        return cfg.with_text_model(self.text_model) if self.text_model else cfg

    def tokenizer(self) -> SharedTokenizer:
        return load_tokenizer(self.text_model or DEFAULT_TOKENIZER)

    def check(self) -> None:
        """Every file named exists and fits, before anything runs: CheckpointError / ValueError saying which."""
        AdapterSpec.parse(self.adapter)
        if self.vit_weights and not Path(self.vit_weights).is_file():
            raise CheckpointError(f"--vit-weights {self.vit_weights}: no such file")
        cfg, tokenizer = self.config(), self.tokenizer()
        if self.init:
            try:
                meta = read_metadata(self.init)
                check_tokenizer(meta, tokenizer, self.init)
                check_model_config(meta, cfg, self.init)
                if meta.get("adapter"):
                    raise CheckpointError(f"{self.init}: has adapters ({meta['adapter']}); start from its merged "
                                          "export (model-merged.safetensors)")
            except CheckpointError as exc:
                raise CheckpointError(f"--init: {exc}") from None

    def initial(self, *, seed: int, cfg: ModelConfig | None = None) -> M3FM:
        """The run's starting weights: drawn from ``seed`` (towers from their local files), or ``init``'s;
        then the adapters (their A matrices drawn from ``seed`` too)."""
        torch.manual_seed(seed)
        model = build_model(cfg or self.config(), tokenizer=self.tokenizer(), text_model=self.text_model or None,
                            vit_weights=None if self.init else self.vit_weights or None,
                            pretrained_text=not self.init)
        if self.init:
            load_weights_into(model, self.init)
        spec = AdapterSpec.parse(self.adapter)
        return add_adapters(model, spec) if spec else model

    def empty(self, *, adapters: bool = True) -> M3FM:
        """The architecture only (nothing pretrained is read): what a global state is loaded into."""
        spec = AdapterSpec.parse(self.adapter) if adapters else None
        return build_model(self.config(), tokenizer=self.tokenizer(), text_model=self.text_model or None,
                           pretrained_text=False, adapter=spec)

    def merged(self, model: M3FM) -> M3FM:
        """``model`` with its adapters folded in: a plain model for inference (itself when it has none)."""
        return merged(model, model.adapter, self.empty(adapters=False)) if model.adapter else model


def tensor_bytes(state: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())
