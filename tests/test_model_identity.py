"""What a generator is, by content: registry entries, fingerprints of verified downloads, banks that attach by
identity (never by file name), --bank with an "unverified" notice, automatic Z -> W distillation (cached), and an
app that falls back instead of exiting. Tiny z = w = 512 generators (16 px), offline."""

import dataclasses

import numpy as np
import pytest

import _refpickle as rp
from editor import checkpoints as ck
from editor import public_banks, service
from editor.bank import Bank, BankEntry, GeneratorInfo, generator_info, load_bank, save_bank
from editor.checkpoints import registry
from editor.directions import Space
from editor.engine import EngineConfig
from editor.stylegan2 import NetworkConfig, build_generator

FFHQ_LIKE = NetworkConfig(z_dim=512, w_dim=512, img_resolution=16, mapping_layers=2, channel_base=256,
                          channel_max=16, num_fp16_res=0)  # the FFHQ latent sizes, 6 ws
Z_ATTRIBUTES = ("smiling", "young", "eyeglasses", "male")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty editor cache, a tiny 'ffhq-1024' registry entry (16 px, so its bank has num_ws 6), offline."""
    monkeypatch.setenv(ck.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(ck.OFFLINE_ENV, "1")
    monkeypatch.setitem(ck.REGISTRY, "ffhq-1024", dataclasses.replace(ck.REGISTRY["ffhq-1024"], resolution=16))
    monkeypatch.setattr(service, "DIRECTIONS_DIR", tmp_path / "directions")
    (tmp_path / "cache").mkdir()
    return tmp_path / "cache"


def ffhq_bank(path, model_id="registry:ffhq-1024", num_ws=6):
    """A bank like the shipped FFHQ one: Z boundaries (no W counterpart) and one W direction."""
    rng = np.random.default_rng(0)
    entries = [BankEntry(a, "svm", Space("z"), rng.standard_normal((1, 512)), sigma=1.0) for a in Z_ATTRIBUTES]
    entries.append(BankEntry("smile", "svm", Space("w"), rng.standard_normal((1, 512)), sigma=1.0))
    return save_bank(Bank(GeneratorInfo(model_id, 512, 512, num_ws), tuple(entries)), path)


def open_small(model, bank=None):
    return service.open_engine(model, bank, pca_samples=200, config=EngineConfig(preview_resolution=16))


def test_registry_lists_nvidias_published_face_generators():
    ada = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/"
    want = {"ada-ffhq": ada + "ffhq.pkl", "ada-metfaces": ada + "metfaces.pkl",
            "ada-ffhq-256-tl": ada + "transfer-learning-source-nets/ffhq-res256-mirror-paper256-noaug.pkl",
            "ada-ffhq-512-tl": ada + "transfer-learning-source-nets/ffhq-res512-mirror-stylegan2-noaug.pkl",
            "ada-ffhq-1024-tl": ada + "transfer-learning-source-nets/ffhq-res1024-mirror-stylegan2-noaug.pkl"}
    for name, url in want.items():
        info = ck.model_info(name)
        assert info.url == url and "non-commercial" in info.license_name and info.size and info.published_at
        assert info.num_ws == {256: 14, 512: 16, 1024: 18}[info.resolution]
    files = [i.filename for i in ck.list_models() if i.filename]
    assert len(files) == len(set(files))  # each has its own cache file
    assert ck.model_info("ada-ffhq").bank_name == "ffhq-1024" and ck.model_info("ada-metfaces").bank_name is None
    # a file is never a registry model because of its name
    assert ck.registry_entry_for("/somewhere/stylegan2-ffhq-1024x1024.pkl") is None
    assert ck.registry_entry_for(want["ada-ffhq"]).name == "ada-ffhq"


def test_random_weights_named_like_nvidias_file_are_not_presented_as_nvidias(cache):
    rp.write_reference_pickle(cache / "stylegan2-ffhq-1024x1024.pkl", {"G_ema": build_generator(FFHQ_LIKE, seed=1)})
    ffhq_bank(service.DIRECTIONS_DIR / "ffhq-1024.safetensors")
    engine, card = open_small("ffhq-1024")
    assert "unverified" in card.description and card.license_name.startswith("unknown")
    assert any("not verified" in n for n in card.notices)
    assert engine.bank.attributes[0] == "pc0"  # the FFHQ bank is not attached by name
    with pytest.raises(ValueError, match="not verified"):
        load_bank(service.DIRECTIONS_DIR / "ffhq-1024.safetensors", generator_info(engine.G, "ffhq-1024"))


def test_explicit_bank_attaches_unverified_and_distils_every_z_attribute_once(cache, monkeypatch):
    rp.write_reference_pickle(cache.parent / "mine.pkl", {"G_ema": build_generator(FFHQ_LIKE, seed=2)})
    bank = ffhq_bank(cache.parent / "ffhq.safetensors")
    engine, card = open_small(str(cache.parent / "mine.pkl"), str(bank))
    assert any(n.startswith("Unverified bank") for n in card.notices)
    assert set(Z_ATTRIBUTES) | {"smile"} <= set(engine.bank.attributes)  # every Z boundary is now a W slider
    assert all(d.space in ("w", "w+") for d in engine.bank.directions)
    cached = list((cache / "distilled").glob(f"{engine.model_id}-*.safetensors"))
    assert len(cached) == 1

    def no_second_run(*args, **kwargs):
        raise AssertionError("distilled again")

    monkeypatch.setattr(public_banks, "distill_z_entries", no_second_run)
    engine2, _ = open_small(str(cache.parent / "mine.pkl"), str(bank))
    assert engine2.bank.attributes == engine.bank.attributes
    d1, d2 = (e.bank.find("smiling") for e in (engine, engine2))
    assert np.allclose(d1.vector, d2.vector)


def test_bank_of_another_architecture_is_refused_even_with_bank(cache):
    bank = ffhq_bank(cache.parent / "ffhq.safetensors", num_ws=18)
    engine, card = open_small("random:small", str(bank))
    assert any("could not be used" in n and "z_dim" in n for n in card.notices)
    assert engine.bank.attributes[0] == "pc0"


def test_verified_download_attaches_the_bank_under_any_file_name(cache, monkeypatch):
    G = build_generator(FFHQ_LIKE, seed=3)
    source = cache.parent / "server" / "stylegan2-ffhq-1024x1024.pkl"
    source.parent.mkdir()
    rp.write_reference_pickle(source, {"G_ema": G})

    def fake_download(url, dest, **kwargs):  # what download_url does once the transfer is complete
        assert url == ck.REGISTRY["ffhq-1024"].url
        dest.write_bytes(source.read_bytes())
        return dest

    monkeypatch.setattr(ck.download, "download_url", fake_download)
    ffhq_bank(service.DIRECTIONS_DIR / "ffhq-1024.safetensors")
    engine, card = open_small("ffhq-1024")  # downloads, records the sha256, learns the model_id at load
    fp = registry.fingerprints()["ffhq-1024"]
    assert fp.sha256 == registry.file_sha256(source) and fp.model_id == engine.model_id
    assert "verified" in card.description and card.license_name == ck.REGISTRY["ffhq-1024"].license_name
    assert "young" in engine.bank.attributes and not any("nverified" in n for n in card.notices)
    # the same weights under another name (and another format) are recognised by their content
    ck.save_generator(engine.G, cache.parent / "renamed.safetensors")
    engine2, card2 = open_small(str(cache.parent / "renamed.safetensors"))
    assert card2.description == card.description and engine2.bank.attributes == engine.bank.attributes
    # a cache file replaced by other weights is no longer verified
    rp.write_reference_pickle(cache / "stylegan2-ffhq-1024x1024.pkl", {"G_ema": build_generator(FFHQ_LIKE, seed=4)})
    _, card3 = open_small("ffhq-1024")
    assert "unverified" in card3.description


def test_publisher_sha256_refuses_another_file(cache, monkeypatch):
    monkeypatch.setitem(ck.REGISTRY, "ada-ffhq", dataclasses.replace(ck.REGISTRY["ada-ffhq"], sha256="0" * 64))
    path = cache / "x.pkl"
    path.write_bytes(b"not the file")
    with pytest.raises(ValueError, match="published"):
        registry.record_download("ada-ffhq", path)
    assert registry.fingerprints() == {}


def test_bad_model_or_bank_never_stops_the_app(cache, tmp_path):
    crafted = tmp_path / "crafted.pkl"
    crafted.write_bytes(b"\x80\x04" + b"garbage" * 100)
    engine, card = open_small(str(crafted), str(tmp_path / "no-such-bank.safetensors"))
    assert card.source in ("demo", service.FALLBACK_RANDOM)
    assert any("could not be loaded" in n and "crafted.pkl" in n for n in card.notices)
    assert any("could not be used" in n for n in card.notices)


def test_available_models_lists_demo_and_cached_registry_files(cache):
    assert "ffhq-1024" not in service.available_models()
    (cache / "stylegan2-ada-pytorch-metfaces.pkl").write_bytes(b"x")
    assert "ada-metfaces" in service.available_models()


def test_page_offers_the_model_chooser_only_with_a_switcher():
    import app
    from _engine_fixtures import tiny_engine

    engine = tiny_engine()
    card = service.ModelCard("tiny", "tiny", "none", "", ())
    calls = []

    def switch(name, progress):
        calls.append(name)
        return f"Loaded {name}"

    def ids(demo):
        return {c.get("props", {}).get("elem_id"): c for c in demo.config["components"]}

    assert "model-pick" not in ids(app.build_demo(engine, card))
    demo = app.build_demo(engine, card, switch_model=switch, models=["demo", "ada-metfaces"])
    pick = ids(demo)["model-pick"]["props"]
    assert [c[0] for c in pick["choices"]] == ["tiny", "demo", "ada-metfaces"] and pick["value"] == "tiny"
    fn = next(f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "on_switch")
    out = fn.fn("ada-metfaces")
    assert calls == ["ada-metfaces"] and "Loaded ada-metfaces" in list(out.values())[0]
    assert "already running" in list(fn.fn("tiny").values())[0]
