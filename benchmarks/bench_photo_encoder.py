"""Photo -> editable face: the encoder path (encoder, then a short refinement) against the 100-step projection.

    nice -n 10 python -m benchmarks.bench_photo_encoder --model demo --photos 50 --generated 50 --baseline 10 \
        --json docs/photos/encoder.json --examples docs/photos/encoder_examples.png
    nice -n 10 python -m benchmarks.bench_photo_encoder --model demo --photos 10 --generated 10 --baseline 10 \
        --methods projection --edit-faces 0 --json docs/photos/projection_baseline.json   # the slow one alone

Two held-out sets, as in bench_projection:
- toon photos (renderer seeds 10,000,000 + i, 256 px, a room behind a placed and turned head). Each goes through the
  app's whole pipeline (``PhotoProjector``: find the face with the toon finder, align, encode or project), timed
  from the uploaded array to the editable latent. When the finder misses a face (it finds about 19 in 20), the photo
  is aligned from the renderer's landmarks and only the inversion is timed; the summary counts the misses;
- generated faces with known latents (z = RandomState(1000 + i), psi 1), aligned by construction, for the latent
  recovery error (RMS over rows and dims of ws - ws_true, in units of W's std);
- for a model distilled from the toon world, "world photos": photos of T(z) (z = RandomState(5000 + i)) aligned from
  the renderer's landmarks, whose latent is known (the mapping of z): the latent error on real toon photos.
Methods: ``encoder`` (one forward pass), ``encoder+refine`` (the app's default: REFINE, 12 W+ steps), and
``projection`` (the previous default, 100 steps; on the first ``--baseline`` targets of each set, it is slow).
Quality: PSNR and the shift-tolerant LPIPS AlexNet distance of the reconstruction to the aligned target; for world
photos also the same scores of the true latent's image (``true_latent``: the best a faithful, on-manifold inversion
can score with this generator).
Edits: every default slider of the model's bank at +3 sigma on projected photos the attribute model says lack the
attribute (-3 on those that have it), as bench_demo_model does on sampled faces, with the same judge; the success
rates sit next to those of sampled faces (held-out seeds) measured in the same run: at psi 0.7 (the app's default)
and at psi 1, the distribution the toon photos are drawn from (z ~ N(0, I), untruncated), the like-for-like one.
Identity: mean
|change| of skin tone and face width over their spread across renders (bar < 0.25).
Timings are wall-clock on whatever else the machine runs: read them with the machine's load in mind.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

PHOTO_SEED = 10_000_000
GENERATED_SEED = 1000
WORLD_SEED = 5000
SAMPLED_SEED = 32_000_000
PSI = 0.7


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo")
    p.add_argument("--photos", type=int, default=50)
    p.add_argument("--generated", type=int, default=50)
    p.add_argument("--baseline", type=int, default=10, help="targets per set for the 100-step projection")
    p.add_argument("--edit-faces", type=int, default=50, help="sampled faces for the edit comparison (0: none)")
    p.add_argument("--edit-method", default=None, help="direction method of the edits (default: the app's 'auto')")
    p.add_argument("--methods", default="encoder,encoder+refine,projection",
                   help="comma-separated subset (the slow projection can run as its own job)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    p.add_argument("--examples", default=None, help="an image: photo | aligned | encoder | +refine | edits")
    p.add_argument("--refine", default="", metavar="FIELD=VALUE,...",
                   help="override fields of the refinement schedule (editor.projection.REFINE) for encoder+refine, "
                        "e.g. steps=24,lr=0.05 (to compare schedules; the app uses REFINE as it is)")
    return p.parse_args(argv)


def _refine_config(overrides: str):
    """REFINE with ``field=value`` overrides, each value parsed as the field's type."""
    from editor.projection import REFINE

    changes = {}
    for item in filter(None, overrides.split(",")):
        key, _, value = item.partition("=")
        if not hasattr(REFINE, key):
            raise SystemExit(f"--refine: REFINE has no field {key!r}")
        kind = type(getattr(REFINE, key))
        changes[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return dataclasses.replace(REFINE, **changes)


def _t(u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(u8)).permute(2, 0, 1)[None].float() / 127.5 - 1


def main(argv=None) -> int:
    args = _args(argv)
    torch.set_num_threads(args.threads)
    from PIL import Image

    from editor import toonfaces
    from editor.align import NoFaceError, align_face
    from editor.attributes import load_attribute_model
    from editor.checkpoints import resolve_source
    from editor.engine import EditState
    from editor.projection import DEFAULT, PhotoProjector, lpips_model, psnr, w_statistics
    from editor.service import open_engine
    from editor.toonlatent import LatentWorld

    engine, card = open_engine(args.model, device="cpu")
    G = engine.G
    alex = lpips_model("alex")
    judge = load_attribute_model()
    methods = {"encoder": PhotoProjector(G, args.model, refine=None),
               "encoder+refine": PhotoProjector(G, args.model, refine=_refine_config(args.refine)),
               "projection": PhotoProjector(G, args.model, encoder=None, config=DEFAULT)}
    wanted = args.methods.split(",")
    if unknown := set(wanted) - set(methods):
        raise SystemExit(f"unknown methods {sorted(unknown)}; choose from {list(methods)}")
    methods = {k: v for k, v in methods.items() if k in wanted}
    if any(m.encoder is None for k, m in methods.items() if k != "projection"):
        raise SystemExit(f"{args.model} has no encoder trained for its weights (train-encoder --export ...)")
    stats = w_statistics(G, DEFAULT.w_avg_samples, seed=DEFAULT.seed + 7)  # once, at app start-up: not per photo
    for m in methods.values():
        m._w_stats = stats
    w_var = stats[1] ** 2 / G.w_dim  # mean per-dimension variance of W: the unit of the latent errors

    photos = [toonfaces.render(PHOTO_SEED + i, 256, "photo") for i in range(args.photos)]
    gen_ws, gen_img = [], []
    with torch.no_grad():
        for i in range(args.generated):
            z = torch.from_numpy(np.random.RandomState(GENERATED_SEED + i).randn(1, G.z_dim).astype(np.float32))
            ws = G.mapping(z, None)
            gen_ws.append(ws)
            gen_img.append((G.synthesis(ws, noise_mode="const")[0] * 127.5 + 128).clamp(0, 255).to(torch.uint8)
                           .permute(1, 2, 0).numpy())
        world = LatentWorld.for_model(resolve_source(args.model))  # None unless distilled from the toon world
        world_ws, world_img = [], []
        if world is not None:  # toon photos of T(z): a room, the head placed and turned, and a known latent
            for i in range(args.generated):
                z = np.random.RandomState(WORLD_SEED + i).randn(1, G.z_dim)
                world_img.append(world.aligned_photos(z, G.img_resolution)[0])
                world_ws.append(G.mapping(torch.from_numpy(z.astype(np.float32)), None))

    results: dict = {"model": args.model, "model_id": engine.model_id, "machine": "2-core CPU (AVX-512), "
                     f"{args.threads} torch thread(s), shared", "date": time.strftime("%Y-%m-%d"), "methods": {}}
    if "encoder+refine" in methods:
        results["refine"] = dataclasses.asdict(methods["encoder+refine"].refine)
    if world_img:  # the true latents' own images: what the generator draws for the right answer
        with torch.no_grad():
            truth = [(G.synthesis(ws, noise_mode="const")[0] * 127.5 + 128).clamp(0, 255).to(torch.uint8)
                     .permute(1, 2, 0).numpy() for ws in world_ws]
        results["true_latent"] = {"world photo": {
            "n": len(truth), "psnr": float(np.mean([psnr(r, t) for r, t in zip(truth, world_img)])),
            "lpips_alex": float(np.mean([float(alex(_t(r), _t(t)).mean()) for r, t in zip(truth, world_img)]))}}
        print("true latent", json.dumps(results["true_latent"]), flush=True)
    latents: dict[str, list] = {}
    for name, proj in methods.items():
        rows = []
        n_photo = args.photos if name != "projection" else min(args.baseline, args.photos)
        n_gen = args.generated if name != "projection" else min(args.baseline, args.generated)
        for i in range(n_photo):
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                res = proj(photos[i].image)
                ws, crop, found = res.ws, res.aligned, True
            except NoFaceError:  # the finder missed it: align from the renderer's landmarks, time the rest only
                crop = align_face(photos[i].image, photos[i].landmarks, G.img_resolution).image
                t0, c0 = time.perf_counter(), time.process_time()
                ws, found = proj.invert(crop)[0][0].numpy(), False
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            with torch.no_grad():
                rec = engine.render(EditState.create(engine.latent_from_array(ws, origin="bench")))
            tgt = crop if crop.shape == rec.shape else np.asarray(
                Image.fromarray(crop).resize(rec.shape[1::-1], Image.Resampling.LANCZOS))
            rows.append({"set": "photo", "i": i, "found": found, "seconds": wall, "cpu_seconds": cpu,
                         "psnr": psnr(rec, tgt), "lpips_alex": float(alex(_t(rec), _t(tgt)).mean())})
            latents.setdefault(name, []).append((ws, rec, crop))
        known = [("generated", gen_img, gen_ws), ("world photo", world_img, world_ws)]
        for set_name, images, true_ws in known:  # aligned by construction: no face finding
            for i in range(min(n_gen, len(images))):
                t0 = time.perf_counter()
                ws, rec = proj.invert(images[i])
                wall = time.perf_counter() - t0
                err = float(((ws - true_ws[i]).square().mean() / w_var).sqrt())
                rows.append({"set": set_name, "i": i, "seconds": wall, "psnr": psnr(rec, images[i]),
                             "lpips_alex": float(alex(_t(rec), _t(images[i])).mean()), "latent_rmse_sigma": err})
        summary = {}
        for s in ("photo", "generated", "world photo"):
            sel = [r for r in rows if r["set"] == s]
            if not sel:
                continue
            summary[s] = {"n": len(sel), "median_seconds": statistics.median(r["seconds"] for r in sel),
                          "psnr": float(np.mean([r["psnr"] for r in sel])),
                          "lpips_alex": float(np.mean([r["lpips_alex"] for r in sel]))}
            if s == "photo":
                timed = [r for r in sel if r["found"]] or sel  # whole pipeline: photos the finder found
                summary[s]["found_by_finder"] = sum(r["found"] for r in sel)
                summary[s]["median_seconds"] = statistics.median(r["seconds"] for r in timed)
                summary[s]["median_cpu_seconds"] = statistics.median(r["cpu_seconds"] for r in timed)
            if s != "photo":
                summary[s]["latent_rmse_sigma"] = float(np.mean([r["latent_rmse_sigma"] for r in sel]))
        results["methods"][name] = {"summary": summary, "rows": rows}
        print(name, json.dumps(summary), flush=True)

    if args.edit_faces:
        results["edits"] = edit_rates(engine, judge, latents, args.edit_faces, args.edit_method)
        results["edits"]["method"] = args.edit_method or "auto"
        print(json.dumps(results["edits"]["summary"], indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    if args.examples:
        examples(engine, photos, latents, args.examples)
        pasted_examples(engine, methods["encoder+refine"], args.examples.rsplit(".", 1)[0] + "_pasted.png")
    return 0


def edit_rates(engine, judge, latents: dict, n_sampled: int, method: str | None = None) -> dict:
    """Default sliders (or `method`'s) at +-3 on projected photos (per inversion method) and on sampled faces: success
    rates, how often every other binary attribute keeps its label, and identity."""
    from benchmarks.bench_demo_model import IDENTITY
    from editor.engine import EditState
    from editor.toonfaces import ATTRIBUTES, render_batch

    binary = [s.name for s in ATTRIBUTES if s.kind == "binary" and s.name in engine.bank.attributes]
    spread_src = judge.predict(render_batch(range(31_000_000, 31_000_300), size=engine.resolution)[0])
    spread = {k: float(spread_src.scores[k].std()) for k in IDENTITY}
    sets = {m: [engine.latent_from_array(ws, origin="bench") for ws, _, _ in v] for m, v in latents.items()
            if m != "projection"}
    sets["sampled"] = [engine.sample(SAMPLED_SEED + i, PSI) for i in range(n_sampled)]
    # the toon photos are drawn from the world untruncated, so the like-for-like reference is psi = 1
    sets["sampled psi 1"] = [engine.sample(SAMPLED_SEED + i, 1.0) for i in range(n_sampled)]
    out: dict = {"per_set": {}, "summary": {}}
    for set_name, lats in sets.items():
        base = np.stack([engine.render(EditState.create(lt)) for lt in lats])
        pb = judge.predict(base)
        lb = {k: v.numpy() for k, v in pb.labels().items()}
        per: dict = {}
        hits = total = 0
        kept = [0, 0]  # other binary attributes whose label an edit left as it was, of all checked
        ident = []
        for name in binary:
            for sign, want in ((3.0, 1), (-3.0, 0)):
                idx = np.flatnonzero(lb[name] != want)
                if len(idx) == 0:
                    continue
                edited = np.stack([engine.render(EditState.create(lats[i], {name: sign}, method=method))
                                   for i in idx])
                pe = judge.predict(edited)
                le = {k: v.numpy() for k, v in pe.labels().items()}
                ok = (le[name] == want)
                same = [float((le[o] == lb[o][idx]).mean()) for o in binary if o != name]
                kept[0] += sum(same) * len(idx)
                kept[1] += len(same) * len(idx)
                per[f"{name} {sign:+g}"] = {"faces": int(len(idx)), "success": float(ok.mean()),
                                            "others_kept": float(np.mean(same)), "worst_kept": float(min(same))}
                hits += int(ok.sum())
                total += len(idx)
                ident.append({k: float((pe.scores[k] - pb.scores[k][idx]).abs().mean()) / spread[k]
                              for k in IDENTITY})
        out["per_set"][set_name] = per
        out["summary"][set_name] = {"success_pooled": hits / max(total, 1), "edits": total,
                                    "others_kept_pooled": kept[0] / max(kept[1], 1),
                                    "identity_mean": {k: float(np.mean([d[k] for d in ident])) for k in IDENTITY}}
    return out


def examples(engine, photos, latents: dict, path: str) -> None:
    """Rows of: photo | aligned crop | encoder | encoder+refine | edited (+3 smiling, -3... ) | pasted back."""
    from PIL import Image

    from editor.engine import EditState

    rows = []
    r = engine.resolution
    for i in range(min(6, len(latents["encoder+refine"]))):
        photo = np.asarray(Image.fromarray(photos[i].image).resize((r, r)))
        ws_e, rec_e, aligned = latents["encoder"][i]
        ws_r, rec_r, _ = latents["encoder+refine"][i]
        lat = engine.latent_from_array(ws_r, origin="bench")
        edits = [engine.render(EditState.create(lat, {a: s})) for a, s in (("smiling", 3.0), ("eyeglasses", 3.0),
                                                                             ("long_hair", 3.0))
                 if a in engine.bank.attributes]
        al = np.asarray(Image.fromarray(aligned).resize((r, r)))
        rows.append(np.concatenate([photo, al, rec_e, rec_r, *edits], axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(path, quality=92)


def pasted_examples(engine, proj, path: str, seeds=(10_000_104, 10_000_105, 10_000_110)) -> None:
    """Whole photos: original | +3 smiling pasted back | +3 eyeglasses pasted back (the app's paste-back)."""
    from PIL import Image

    from editor import toonfaces
    from editor.engine import EditState

    rows = []
    for seed in seeds:
        photo = toonfaces.render(seed, 384, "photo").image
        res = proj(photo)
        lat = engine.latent_from_array(res.ws, origin="bench")
        cells = [photo] + [res.paste_back(engine.render(EditState.create(lat, {a: 3.0})))
                           for a in ("smiling", "eyeglasses") if a in engine.bank.attributes]
        rows.append(np.concatenate(cells, axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(path, quality=90)


if __name__ == "__main__":
    raise SystemExit(main())
