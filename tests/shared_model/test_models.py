"""MultiMedCLIP and MultiMedLM behave as the recipe needs (shapes, language token, per-example loss)."""
from __future__ import annotations

import torch

from shared_model.config import ALIASES, UNTRAINED, fill_aliases, get_preset, trained_keys
from shared_model.lm import project_onto_bank
from shared_model.model import build_model
from shared_model.objectives import contrastive_loss, lm_per_example_loss


def _model():
    torch.manual_seed(0)
    return build_model(get_preset("tiny"))


def test_embeddings_are_unit_norm_in_one_space():
    model = _model().eval()
    cfg = model.cfg
    img = model.clip.encode_image(torch.rand(3, 1, cfg.image_size, cfg.image_size))
    ids, mask = model.tokenizer.encode_text(["No pneumothorax.", "未见气胸。", "x"], cfg.max_text_len)
    txt = model.clip.encode_text(ids, mask)
    assert img.shape == txt.shape == (3, cfg.embed_dim)
    assert torch.allclose(img.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(txt.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_contrastive_loss_is_lower_for_matching_pairs():
    model = _model().train()
    images = torch.rand(4, 1, 64, 64)
    loss = contrastive_loss(model, images, ["a", "b", "c", "d"])
    loss.backward()
    assert loss.item() > 0 and model.clip.logit_scale.grad is not None


def test_lm_loss_of_one_example_does_not_depend_on_the_others():
    model = _model().eval()
    texts, langs = ["No pleural effusion.", "心影增大。", "The heart is enlarged."], ["en", "zh", "en"]
    a = lm_per_example_loss(model, texts, langs, noise_std=0.0, device=torch.device("cpu"))
    b = lm_per_example_loss(model, texts[:2] + ["Something else entirely, and longer."], langs,
                            noise_std=0.0, device=torch.device("cpu"))
    assert torch.allclose(a[:2], b[:2], atol=1e-5) and not torch.isclose(a[2], b[2])


def test_generation_starts_with_the_requested_language_token():
    model = _model().eval()
    tok = model.tokenizer
    cond = torch.nn.functional.normalize(torch.randn(2, model.cfg.embed_dim), dim=-1)
    start = torch.tensor([tok.lang_ids["en"], tok.lang_ids["zh"]])
    for beams in (1, 3):
        out = model.lm.generate(cond, start, num_beams=beams, max_len=8)
        assert out[:, 0].tolist() == start.tolist() and out.shape[1] <= 8


def test_bank_projection_stays_in_the_span_of_the_bank():
    bank = torch.nn.functional.normalize(torch.randn(5, 16), dim=-1)
    query = bank[2:3] + 0.01 * torch.randn(1, 16)
    projected = project_onto_bank(query, bank, temperature=0.01)
    assert torch.allclose(projected, bank[2:3], atol=1e-2)


def test_image_tower_loads_local_timm_weights(tmp_path):
    import timm
    from safetensors.torch import save_file

    cfg = get_preset("tiny")
    # A 3-channel checkpoint, as ImageNet ViTs ship: timm folds it to our 1-channel stem.
    source = timm.create_model(cfg.vit_arch, pretrained=False, num_classes=0, in_chans=3, img_size=cfg.image_size,
                               patch_size=cfg.patch_size, embed_dim=cfg.vit_dim, depth=cfg.vit_depth,
                               num_heads=cfg.vit_heads)
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model = build_model(cfg, vit_weights=path)
    assert torch.equal(model.clip.visual.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)
    assert model.clip.visual.patch_embed.proj.weight.shape[1] == 1


def test_what_a_site_sends_back_rebuilds_every_tensor_its_objective_trains():
    # Prepare: one report-generation step (plain) changes the LM; the aliases are the model's own ties.
    model = _model().train()
    state = model.state_dict(keep_vars=True)
    assert all(state[alias] is state[key] for alias, key in ALIASES.items())
    first = {}  # every tie in the model is listed, under its first name
    ties = {k: first.setdefault(id(v), k) for k, v in state.items() if first.setdefault(id(v), k) != k}
    assert ties == ALIASES
    before = {k: v.detach().clone() for k, v in state.items()}
    loss = lm_per_example_loss(model, ["No pleural effusion.", "心影增大。"], ["en", "zh"], noise_std=0.0,
                               device=torch.device("cpu")).mean()
    loss.backward()
    # The encoder reads the prefix embeddings only: its token table gets no gradient.
    assert all(state[k].grad is None for k in UNTRAINED)
    with torch.no_grad():
        for p in model.lm.parameters():
            if p.grad is not None:
                p.add_(1.0)
    # Execute: send the trained keys, complete with the old global values, fill the aliases.
    after = model.state_dict()
    sent = {k: after[k] for k in trained_keys(after, "report-generation")}
    rebuilt = {k: sent.get(k, before[k]) for k in before}
    fill_aliases(rebuilt)
    # Assert: the global rebuilt from what was sent is the trained model, with fewer values sent.
    assert all(torch.equal(rebuilt[k], after[k]) for k in after)
    assert not any(k.startswith("clip.") for k in sent)
    lm_values = sum(v.numel() for k, v in after.items() if k.startswith("lm."))
    assert sum(v.numel() for v in sent.values()) < 0.55 * lm_values
