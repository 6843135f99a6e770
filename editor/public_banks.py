"""Public FFHQ direction files -> the project's bank format, and Z boundaries distilled into W directions.

Sources (data only, MIT-licensed; see ../shared/public-banks/README.md and each folder's LICENSE):

- ``interfacegan-stylegan2-ffhq-z/boundary_<CelebA attribute>.npy``: 40 unit [1, 512] Z-space SVM normals for NVIDIA's
  StyleGAN2 FFHQ 1024 generator (genforce/interfacegan, InterFaceGAN++ extension). -> entries
  ``<attribute>/svm/z`` (lower-case CelebA names: ``smiling``, ``eyeglasses``, ``5_o_clock_shadow``...). z is
  N(0, I), so the projections on a unit vector have σ = 1 exactly; InterFaceGAN stores no intercept (0).
- ``e4e-stylegan2-ffhq-w/interfacegan_{age,smile,pose}.npy``: unit W directions (omertov/encoder4editing). ->
  ``age/svm/w``, ``smile/svm/w``, ``pose/svm/w`` (pose's 18 identical rows are stored once). Their σ needs W samples
  of the real generator; until `distill_bank --calibrate` measures it, σ is estimated from the GANSpace PCA of the
  same W space: sqrt(Σ_k std_k² (c_k·n)²) over the 80 components (a slight underestimate: the variance outside the
  top 80 components is not known).
- ``e4e-stylegan2-ffhq-w/ganspace_pca_*.npy``: GANSpace PCA of W (mean, 80 components, their stds). ->
  ``pc0..pc{k-1}/pca/w`` (σ = the component's std, intercept −c·mean) and the commonly used named layer-range edits
  as ``ganspace_<name>/pca/w+:A-B``. e4e's GANSpace edit *sets* the coordinate along the component (in stds); here,
  as for every bank direction, the slider *adds* α·σ·n, which is the same move for a latent at the mean.

The bank's identity is ``registry:ffhq-1024`` (see `editor.bank.registry_generator_info`): the published weights
cannot be hashed here, so it validates against a generator loaded from the registry name / URL / cached file.

Distilling (`distill_z_entries`): sample z, map to W with the generator's mapping network (no synthesis needed),
label each sample by its signed distance to a Z boundary, and fit a W boundary on the confident top / bottom share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from editor import directions as D
from editor.bank import Bank, BankEntry, GeneratorInfo, one_blas_thread, registry_generator_info
from editor.directions import Space

__all__ = ["SOURCES", "GANSPACE_EDITS", "PublicSource", "convert_public_banks", "licence_notice", "distill_z_entries",
           "calibrate_sigmas", "DistillOptions", "distill_for_generator", "z_only_entries"]

INTERFACEGAN_DIR = "interfacegan-stylegan2-ffhq-z"
E4E_DIR = "e4e-stylegan2-ffhq-w"


@dataclass(frozen=True)
class PublicSource:
    """Where one folder of public direction files came from."""

    folder: str  # folder name under the public-banks root
    repository: str  # upstream repository
    commit: str  # upstream commit the files were taken from
    licence: str  # SPDX name
    copyright: str  # the copyright line of its LICENSE


SOURCES = {
    INTERFACEGAN_DIR: PublicSource(INTERFACEGAN_DIR, "https://github.com/genforce/interfacegan",
                                   "150882e69130f90f2e3bc4a6477a498ff03ab1e0", "MIT", "Copyright (c) 2019 Yujun Shen"),
    E4E_DIR: PublicSource(E4E_DIR, "https://github.com/omertov/encoder4editing",
                          "99ea50578695d2e8a1cf7259d8ee89b23eea942b", "MIT", "Copyright (c) 2021 omertov"),
}

# GANSpace's commonly used named edits for the FFHQ generator: name -> (component, first layer, last layer exclusive)
GANSPACE_EDITS: dict[str, tuple[int, int, int]] = {
    "eye_openness": (54, 7, 8),
    "smile": (46, 4, 5),
    "trimmed_beard": (58, 7, 9),
    "white_hair": (57, 7, 10),
    "lipstick": (34, 10, 11),
    "age": (20, 6, 7),
    "yaw": (1, 0, 18),
    "gender": (0, 0, 18),
    "glasses": (12, 0, 4),
}


def _load(path: Path, shape: tuple | None = None) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"missing public direction file {path}")
    a = np.load(path, allow_pickle=False)
    if shape is not None and a.shape != shape:
        raise ValueError(f"{path}: expected shape {shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{path}: contains NaN or infinite values")
    return a.astype(np.float64)


def _provenance(src: PublicSource, file: str, **more) -> dict:
    return {"source": f"{src.repository} @ {src.commit}", "file": f"{src.folder}/{file}", "licence": src.licence,
            "copyright": src.copyright, **more}


def attribute_name(celeba: str) -> str:
    """'5_o_Clock_Shadow' -> '5_o_clock_shadow'."""
    return re.sub(r"[^a-z0-9_]+", "_", celeba.lower()).strip("_")


def convert_public_banks(root: str | Path, model: str = "ffhq-1024", n_pcs: int = 10,
                         include_z: bool = True, command: str = "") -> Bank:
    """The public FFHQ directions under `root` as one `Bank` for registry model `model` (see the module docstring).

    n_pcs: how many raw GANSpace components to offer as 'pcK' sliders (0..80); the named edits are always included.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no public direction folder at {root}")
    info = registry_generator_info(model)
    if (info.z_dim, info.w_dim, info.num_ws) != (512, 512, 18):
        raise ValueError(f"the public FFHQ directions are for z_dim=w_dim=512, num_ws=18 (ffhq-1024); {model} has "
                         f"{info}")
    entries: list[BankEntry] = []

    if include_z:
        src = SOURCES[INTERFACEGAN_DIR]
        files = sorted((root / INTERFACEGAN_DIR).glob("boundary_*.npy"))
        if not files:
            raise FileNotFoundError(f"no boundary_*.npy files in {root / INTERFACEGAN_DIR}")
        for f in files:
            celeba = f.stem[len("boundary_"):]
            v = _load(f, (1, info.z_dim))
            entries.append(BankEntry(
                attribute=attribute_name(celeba), method="svm", space=Space("z"), vector=v, sigma=1.0,
                labeller=f"celeba-classifier:{celeba} (InterFaceGAN)",
                extra=_provenance(src, f.name, celeba_attribute=celeba,
                                  sigma_source="z ~ N(0, I): unit projections have std 1")))

    src = SOURCES[E4E_DIR]
    folder = root / E4E_DIR
    mean = _load(folder / "ganspace_pca_mean.npy", (1, info.w_dim))[0]
    comps = _load(folder / "ganspace_pca_components.npy")
    stds = _load(folder / "ganspace_pca_std.npy")
    if comps.ndim != 2 or comps.shape[1] != info.w_dim or stds.shape != (comps.shape[0],):
        raise ValueError(f"GANSpace files disagree: components {comps.shape}, std {stds.shape}")
    if not 0 <= n_pcs <= comps.shape[0]:
        raise ValueError(f"n_pcs must be in [0, {comps.shape[0]}], got {n_pcs}")
    units = comps / np.linalg.norm(comps, axis=1, keepdims=True)

    def pca_sigma(n: np.ndarray) -> float:
        return float(np.sqrt(np.sum((stds * (units @ n)) ** 2)))

    for name in ("age", "smile", "pose"):
        file = f"interfacegan_{name}.npy"
        v = _load(folder / file)
        if v.ndim != 2 or v.shape[1] != info.w_dim or v.shape[0] not in (1, info.num_ws):
            raise ValueError(f"{folder / file}: expected [1, {info.w_dim}] or [{info.num_ws}, {info.w_dim}], "
                             f"got {v.shape}")
        rows_note = {}
        if v.shape[0] > 1 and np.allclose(v, v[:1]):
            v, rows_note = v[:1], {"rows": f"{info.num_ws} identical rows stored once"}
        n = v[0] / np.linalg.norm(v[0])
        entries.append(BankEntry(
            attribute=name, method="svm", space=Space("w"), vector=v, sigma=pca_sigma(n),
            labeller="celeba-classifier (InterFaceGAN, via e4e)",
            extra=_provenance(src, file, **rows_note,
                              sigma_source="estimated from the GANSpace PCA of W (top 80 components; slight "
                                           "underestimate); measure with distill-bank --calibrate")))

    for k in range(n_pcs):
        entries.append(BankEntry(
            attribute=f"pc{k}", method="pca", space=Space("w"), vector=units[k], sigma=float(stds[k]),
            intercept=-float(units[k] @ mean), n_samples=0,
            extra=_provenance(src, "ganspace_pca_components.npy", component=k)))
    for name, (k, lo, hi) in GANSPACE_EDITS.items():
        if k >= comps.shape[0] or hi > info.num_ws:
            raise ValueError(f"GANSpace edit {name}: component {k} / layers {lo}-{hi} out of range")
        entries.append(BankEntry(
            attribute=f"ganspace_{name}", method="pca", space=Space("w+", lo, hi), vector=units[k],
            sigma=float(stds[k]), intercept=-float(units[k] @ mean),
            extra=_provenance(src, "ganspace_pca_components.npy", component=k, layers=[lo, hi],
                              semantics="e4e sets the coordinate along the component (in stds); this slider adds "
                                        "alpha*sigma (the same move from the mean); the sign follows the stored "
                                        "component")))
    return Bank(generator=info, entries=tuple(entries), command=command or f"python -m editor convert-public-banks "
                f"--src {root} --model {model} --pcs {n_pcs}")


def licence_notice(root: str | Path) -> str:
    """A markdown notice with each source's origin and full LICENSE text (ship it beside the bank)."""
    root = Path(root)
    parts = ["# Licences of the public FFHQ directions in this folder\n",
             "The FFHQ direction bank (`ffhq-1024.safetensors`) was converted from these MIT-licensed files (values "
             "unchanged). The generator they belong to (NVIDIA's StyleGAN2 FFHQ) has its own, non-commercial "
             "licence, shown by the app when it loads the model.\n"]
    for src in SOURCES.values():
        lic = root / src.folder / "LICENSE"
        if not lic.is_file():
            raise FileNotFoundError(f"missing {lic}: the licence must ship with the directions")
        parts.append(f"## {src.folder}\n\nFrom {src.repository} at commit `{src.commit}` ({src.licence}).\n\n```\n"
                     f"{lic.read_text().strip()}\n```\n")
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------------------------------
# Distilling Z boundaries into W directions


@dataclass(frozen=True)
class DistillOptions:
    """Settings of `distill_z_entries`."""

    method: str = "svm"  # svm | logreg | lda | meandiff (fitted in W)
    share: float = 0.1  # confident top / bottom share of the Z scores
    val_share: float = 0.3  # held out for the validation accuracy
    seed: int = 0  # the train / validation split

    def __post_init__(self):
        if self.method not in ("svm", "logreg", "lda", "meandiff"):
            raise ValueError(f"method must be svm, logreg, lda or meandiff, got {self.method!r}")


def distill_z_entries(entries: Sequence[BankEntry], z, ws, options: DistillOptions = DistillOptions(),
                      note: str = "", progress: Callable[[str], None] | None = None) -> list[BankEntry]:
    """W directions from Z boundaries: each sample's label is its signed distance z·n + b to a Z boundary; a W
    boundary is fitted on the confident top / bottom share (the InterFaceGAN protocol, `fit_confident`).

    Args:
        entries: the linear z entries to distill (others are skipped).
        z: [N, z_dim] sampled latents; ws: [N, num_ws, w_dim] their mapping (W) outputs.
        note: recorded in each entry's extra (e.g. the sampling settings).
    Returns:
        one '<attribute>/<method>/w' entry per z entry, labeller 'z-boundary:<z entry>'.
    """
    from editor.custom_sliders import SliderFitOptions, fit_labels

    z = np.asarray(z, dtype=np.float64)
    x = D.fit_space_latents(Space("w"), ws=ws)  # [N, w_dim]
    if z.ndim != 2 or z.shape[0] != x.shape[0]:
        raise ValueError(f"z must be [N, z_dim] with N={x.shape[0]} like ws, got shape {z.shape}")
    fit_opts = SliderFitOptions(method=options.method)
    out = []
    with one_blas_thread():
        for e in entries:
            if e.space.kind != "z" or e.method not in ("svm", "logreg", "meandiff", "lda"):
                continue
            if e.dim != z.shape[1]:
                raise ValueError(f"{e.name} has D={e.dim} but z has z_dim={z.shape[1]}")
            scores = z @ e.vector[0] + e.intercept  # [N] signed distance to the Z boundary
            d = D.fit_confident(lambda a, b: fit_labels(a, b, fit_opts), x, scores,
                                np.random.default_rng(options.seed), share=options.share, val_share=options.val_share)
            entry = BankEntry(attribute=e.attribute, method=options.method, space=Space("w"), vector=d.vector,
                              sigma=d.sigma, intercept=d.intercept, labeller=f"z-boundary:{e.name}",
                              n_samples=d.n_samples, val_accuracy=d.val_accuracy, train_accuracy=d.train_accuracy,
                              extra={**{k: v for k, v in d.extra.items() if isinstance(v, (int, float, str))},
                                     "distilled_from": e.name, "n_pool": int(x.shape[0]), "note": note,
                                     **{k: e.extra[k] for k in ("source", "licence", "copyright") if k in e.extra}})
            out.append(entry)
            if progress:
                progress(entry.name)
    return out


def calibrate_sigmas(entries: Sequence[BankEntry], ws) -> list[BankEntry]:
    """Linear W / W+ entries with σ (and the measured note) re-measured on sampled ws [N, num_ws, w_dim]; others as
    they are. σ is the std of the projections of the mean of the edited layers on the unit direction."""
    from dataclasses import replace

    ws = np.asarray(ws, dtype=np.float64)
    out = []
    for e in entries:
        if e.space.kind == "z" or e.method not in ("svm", "logreg", "meandiff", "lda", "pca", "sefa"):
            out.append(e)
            continue
        x = D.fit_space_latents(e.space, ws=ws)
        sigma = float(np.std(x @ e.vector.mean(axis=0) / np.linalg.norm(e.vector.mean(axis=0))))
        if not sigma > 0:
            out.append(e)
            continue
        out.append(replace(e, sigma=sigma, extra={**e.extra, "sigma_source": f"measured on {ws.shape[0]} samples"}))
    return out


def as_bank(info: GeneratorInfo, entries: Sequence[BankEntry], command: str) -> Bank:
    """A bank from entries, later entries replacing earlier ones of the same attribute/method/space."""
    by_name: dict[str, BankEntry] = {}
    for e in entries:
        by_name[e.name] = e
    return Bank(generator=info, entries=tuple(by_name.values()), command=command)


# ----------------------------------------------------------------------------------------------------------------------
# Distilling automatically when a generator loads (cached by its identity)

AUTO_DISTILL_N = 10000  # latents sampled (seeds 0..N-1, psi 1); the confident 10 % ends of each score are fitted
# LDA: 39 boundaries in 7 s on a loaded 2-core CPU (SVM 28 s, logreg 12 s), with the best validation accuracy of the
# three on a random 8-layer 512-D mapping (measured with a z=w=512 generator; docs/custom_sliders.md)
AUTO_DISTILL_OPTIONS = DistillOptions(method="lda")


def z_only_entries(bank: Bank) -> list[BankEntry]:
    """The bank's linear z entries with no W direction of the same attribute and method: what distilling adds."""
    have_w = {(e.attribute, e.method) for e in bank.entries if e.space.kind == "w"}
    return [e for e in bank.entries if e.space.kind == "z" and e.method in ("svm", "logreg", "meandiff", "lda")
            and (e.attribute, e.method) not in have_w]


def distilled_cache_path(model_id: str, entries: Sequence[BankEntry], n: int, options: DistillOptions,
                         root: str | Path) -> Path:
    """root/<model_id>-<digest of the z directions and settings>.safetensors."""
    import hashlib

    h = hashlib.sha256(f"{n}|{options}".encode())
    for e in entries:
        h.update(e.name.encode() + np.ascontiguousarray(e.vector, dtype=np.float64).tobytes())
    return Path(root) / f"{model_id}-{h.hexdigest()[:12]}.safetensors"


def distill_for_generator(G, bank: Bank, model_id: str, root: str | Path, n: int = AUTO_DISTILL_N,
                          options: DistillOptions = AUTO_DISTILL_OPTIONS, device="cpu", batch: int = 2000) -> list[BankEntry]:
    """W directions for the bank's z-only entries (`z_only_entries`) on generator G, computed once and cached in
    `root` under G's identity (`distilled_cache_path`): the mapping network only, no synthesis."""
    import os

    import torch

    from editor.bank import load_bank, save_bank
    from editor.samples import z_from_seeds

    z_entries = z_only_entries(bank)
    if not z_entries:
        return []
    info = GeneratorInfo(model_id=model_id, z_dim=int(G.z_dim), w_dim=int(G.w_dim), num_ws=int(G.num_ws))
    path = distilled_cache_path(model_id, z_entries, n, options, root)
    if path.is_file():
        try:
            return list(load_bank(path, info).entries)
        except (ValueError, FileNotFoundError):
            path.unlink(missing_ok=True)  # unreadable or stale: distil again
    z = z_from_seeds(np.arange(n), int(G.z_dim))  # [n, z_dim]
    parts = []
    with torch.inference_mode():
        for i in range(0, n, batch):
            zb = torch.from_numpy(z[i:i + batch]).to(device)
            parts.append(G.mapping(zb, None, truncation_psi=1.0)[:, :1].float().cpu().numpy())
    ws = np.concatenate(parts)  # [n, 1, w_dim]: without truncation every layer holds the same w
    entries = distill_z_entries(z_entries, z, ws, options, note=f"{n} latents from seeds 0.., psi 1 (automatic)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.part.safetensors")
    save_bank(Bank(info, tuple(entries), command=f"automatic distillation of {len(entries)} z boundaries"), tmp)
    os.replace(tmp, path)
    return entries
