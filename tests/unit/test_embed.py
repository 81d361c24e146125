"""mgr embed with tiny randomly initialised encoders: every tower family, fusion, the
image policies, and the artifact it writes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TINY_CLIP
from mgr_cli.artifacts import read_header
from mgr_cli.data import load_dataset
from mgr_cli.encoders import towers
from mgr_cli.encoders.embed import EmbedConfig, embed, load_embeddings
from mgr_cli.errors import MgrError


def run(tiny_dataset, tmp_path, name="e", **kw):
    cfg = EmbedConfig(**{**TINY_CLIP, "batch_size": 4, "workers": 0, **kw})
    out = tmp_path / f"{name}.safetensors"
    embed(tiny_dataset, out, cfg, force=True)
    return load_embeddings(out)


def test_clip_text_image_fused(tiny_dataset, tmp_path):
    t, th = run(tiny_dataset, tmp_path, "t", modality="text")
    i, ih = run(tiny_dataset, tmp_path, "i", modality="image")
    f, fh = run(tiny_dataset, tmp_path, "f", modality="fused")
    c, _ = run(tiny_dataset, tmp_path, "c", modality="fused", fusion="concat")
    assert t.shape == i.shape == f.shape == (6, 16) and c.shape == (6, 32)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    mean = (t + i) / 2
    np.testing.assert_allclose(f, mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(c, np.concatenate([t, i], 1) / np.sqrt(2), atol=1e-5)
    assert th["meta"]["modality"] == "text" and th["meta"]["encoders"]["text"]["family"] == "open_clip"
    assert fh["meta"]["fusion"] == "mean" and set(fh["meta"]["encoders"]) == {"text", "image"}
    assert th["meta"]["item_ids_hash"] == read_header(tiny_dataset)["meta"]["item_ids_hash"]
    assert th["inputs"][0]["kind"] == "dataset"


def test_text_rows_follow_item_order(tiny_dataset, tmp_path):
    """Texts are batched by length; the output must still be in item order."""
    t, _ = run(tiny_dataset, tmp_path, "t", modality="text", batch_size=1)
    ds, _ = load_dataset(tiny_dataset)
    torch.manual_seed(0)  # embed seeds random-init towers with EmbedConfig.seed (0)
    clip, _, tok = towers.load_clip("mgr-tiny-clip", None, torch.device("cpu"))
    with torch.no_grad():
        direct = torch.nn.functional.normalize(clip.encode_text(tok([it.text for it in ds.items])), dim=-1)
    np.testing.assert_allclose(t, direct.numpy(), atol=1e-5)


def _tiny_bert(path):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "thing", "number", "red", "green",
             "blue", "yellow", "teal", "grey"] + [str(k) for k in range(10)]
    path.mkdir()
    (path / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(path)
    return path


def test_transformers_text_encoder_pooling(tiny_dataset, tmp_path):
    bert = _tiny_bert(tmp_path / "bert")
    mean, h = run(tiny_dataset, tmp_path, "m", text_model=str(bert), normalize=False)
    cls, _ = run(tiny_dataset, tmp_path, "c", text_model=str(bert), pooling="cls", normalize=False)
    assert mean.shape == (6, 16) and not np.allclose(mean, cls)
    assert h["meta"]["encoders"]["text"]["family"] == "transformers"
    from transformers import AutoModel, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(bert), AutoModel.from_pretrained(bert)
    ds, _ = load_dataset(tiny_dataset)
    enc = tok([ds.items[0].text], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state[0]
    np.testing.assert_allclose(mean[0], hidden.mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(cls[0], hidden[0].numpy(), atol=1e-5)


def test_not_a_transformers_dir(tiny_dataset, tmp_path):
    with pytest.raises(MgrError, match="not a transformers model directory"):
        run(tiny_dataset, tmp_path, text_model=str(tmp_path))


def test_timm_image_encoder_weights(tiny_dataset, tmp_path):
    import timm

    torch.manual_seed(1)
    ref = timm.create_model("test_efficientnet", pretrained=False)
    by_name = tmp_path / "w.pth"
    torch.save(ref.state_dict(), by_name)
    a, h = run(tiny_dataset, tmp_path, "a", modality="image", image_model="test_efficientnet",
               image_weights=str(by_name))
    assert h["meta"]["encoders"]["image"]["loaded"] == "by name"
    renamed = tmp_path / "w2.pth"  # another naming of the same tensors, same order
    torch.save({f"t{k}": v for k, v in enumerate(ref.state_dict().values())}, renamed)
    b, h = run(tiny_dataset, tmp_path, "b", modality="image", image_model="test_efficientnet",
               image_weights=str(renamed))
    assert h["meta"]["encoders"]["image"]["loaded"] == "in order"
    np.testing.assert_allclose(a, b, atol=1e-6)
    torch.save({"x": torch.zeros(3)}, renamed)
    with pytest.raises(MgrError, match="tensors match .* neither by name nor one to one in order"):
        run(tiny_dataset, tmp_path, "c", modality="image", image_model="test_efficientnet",
            image_weights=str(renamed))


def test_missing_image_policy(tiny_dataset, tmp_path):
    ds, _ = load_dataset(tiny_dataset)
    ds.image_path(2).write_bytes(b"broken")
    with pytest.raises(MgrError, match=r"^1 items have no usable image: c \(does not decode .*\); "
                       r"fix them or pass --missing-images blank"):
        run(tiny_dataset, tmp_path, modality="image")
    e, h = run(tiny_dataset, tmp_path, modality="image", missing_images="blank")
    assert h["meta"]["blank_images"] == ["c"] and np.isfinite(e).all()


def test_config_and_input_errors(tiny_dataset, tmp_path):
    with pytest.raises(MgrError, match="--modality must be one of text, image, fused; "
                       "--precision must be auto, fp32, bf16 or fp16"):
        run(tiny_dataset, tmp_path, modality="audio", precision="fp8")
    with pytest.raises(MgrError, match="--precision fp16 needs a CUDA device"):
        run(tiny_dataset, tmp_path, precision="fp16", device="cpu")
    with pytest.raises(MgrError, match="unknown open_clip model 'nope'"):
        run(tiny_dataset, tmp_path, clip_model="nope")
    with pytest.raises(MgrError, match="--device cuda asked for, but no CUDA device"):
        if torch.cuda.is_available():
            pytest.skip("a CUDA device is present")
        run(tiny_dataset, tmp_path, device="cuda")


def test_nan_embeddings_are_an_error(tiny_dataset, tmp_path, monkeypatch):
    real = towers.clip_towers

    def poisoned(*a, **k):
        tw = real(*a, **k)
        fwd = tw["text"].forward
        tw["text"].forward = lambda b: fwd(b) * float("nan")
        return tw

    monkeypatch.setattr(towers, "clip_towers", poisoned)
    with pytest.raises(MgrError, match=r"^6 items got NaN or inf embeddings \(e\.g\. a\)"):
        run(tiny_dataset, tmp_path, modality="text", normalize=False)
    assert not (tmp_path / "e.safetensors").exists()


def test_bf16_on_cpu_is_close_to_fp32(tiny_dataset, tmp_path):
    a, _ = run(tiny_dataset, tmp_path, "a", modality="image")
    b, h = run(tiny_dataset, tmp_path, "b", modality="image", precision="bf16")
    assert h["meta"]["precision"] == "torch.bfloat16"
    assert np.abs(a - b).max() < 0.1


def test_auto_fusion_averages_only_one_clip_space():
    from mgr_cli.encoders.embed import fusion_for

    clip = {"family": "open_clip", "model": "ViT-B-32", "pretrained": "openai"}
    assert fusion_for("auto", {"text": clip, "image": clip}) == "mean"
    assert fusion_for("auto", {"text": {"family": "transformers", "model": "standin:minilm"},
                               "image": clip}) == "concat"
    assert fusion_for("auto", {"text": clip, "image": {**clip, "pretrained": "laion"}}) == "concat"
    assert fusion_for("mean", {"text": {}, "image": {}}) == "mean"


def test_balanced_fusion_gives_each_modality_its_share_whatever_its_width_and_scale():
    import numpy as np

    from mgr_cli.encoders.fusion import balanced_fusion, variance_shares

    rng = np.random.default_rng(0)
    text = rng.normal(0, 100.0, (300, 8))  # narrow and loud
    image = rng.normal(0, 0.01, (300, 512)) @ rng.normal(size=(512, 512))  # wide and quiet
    plain = np.concatenate([text, image], 1)
    assert variance_shares(plain, {"text": 8, "image": 512})["text"] > 0.99  # plain concat: text owns it
    fused = balanced_fusion({"text": text, "image": image}, {"text": 0.5, "image": 0.5}, width=64)
    assert fused.shape == (300, 16)  # both reduced to the narrower width
    shares = variance_shares(fused, {"text": 8, "image": 8})
    assert shares["text"] == pytest.approx(0.5, abs=1e-6) and shares["image"] == pytest.approx(0.5, abs=1e-6)
    tilted = balanced_fusion({"text": text, "image": image}, {"text": 0.2, "image": 0.8}, width=64)
    assert variance_shares(tilted, {"text": 8, "image": 8})["text"] == pytest.approx(0.2, abs=1e-6)
    with pytest.raises(MgrError, match="share above 0 for every modality, summing to 1"):
        balanced_fusion({"text": text, "image": image}, {"text": 0.7, "image": 0.7}, width=64)
    with pytest.raises(MgrError, match="every item has the same text embedding"):
        balanced_fusion({"text": np.ones((10, 4)), "image": image[:10]}, {"text": 0.5, "image": 0.5}, 4)


def test_fuse_artifacts_balanced_records_the_shares(tmp_path, tiny_dataset):
    from mgr_cli.encoders.embed import EmbedConfig, embed, fuse_artifacts, load_embeddings

    for m in ("text", "image"):
        embed(tiny_dataset, tmp_path / f"{m}.st", EmbedConfig(modality=m, clip_model="mgr-tiny-clip",
                                                             clip_pretrained=None))
    h = fuse_artifacts(tmp_path / "text.st", tmp_path / "image.st", tmp_path / "fused.st",
                       fusion="balanced", text_share=0.3, fusion_dim=3)
    emb, _ = load_embeddings(tmp_path / "fused.st")
    assert emb.shape[1] == 6 and h["meta"]["fusion"] == "balanced" and not h["meta"]["normalized"]
    assert h["meta"]["variance_shares"]["text"] == pytest.approx(0.3, abs=1e-5)
    assert h["config"]["text_share"] == 0.3
    with pytest.raises(MgrError, match="--text-share must be between 0 and 1"):
        fuse_artifacts(tmp_path / "text.st", tmp_path / "image.st", tmp_path / "f2.st",
                       fusion="balanced", text_share=1.0)
