"""Pivotal tuning on the photo path: does tuning the generator around the encoder's latent beat the 100-step
projection on toon photos, in the time the app has, and do the sliders still work? (An experiment: the app does not
tune the generator; docs/photos.md, "Pivotal tuning".)

    OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 python -m benchmarks.bench_pivotal_tuning --photos 12 --steps 30 \
        --projection 12 --json docs/photos/pivotal_tuning.json --strips docs/photos/pivotal_tuning.jpg

The pivot is the app's latent without refinement (the toon finder, alignment, one pass of the bundled encoder), as in
PTI (Roich et al. 2022), which tunes the generator's weights so that the pivot draws the photo, leaving the latent
where the encoder put it (editable). Here only the blocks from ``--from-res`` up are tuned, so the earlier blocks'
output is computed once; loss = MSE + ``--perceptual`` x shift-tolerant LPIPS-VGG at 64 px, Adam at ``--lr``.
``--locality W``: PTI's locality regulariser, the same loss between the tuned and the original generator at one
latent per step drawn ``--locality-radius`` sigma from the pivot (an extra forward-backward pass per step).
Measured per photo: PSNR and ST-LPIPS-alex of the reconstruction before and after (at the checkpoints in
``--report``), the seconds from photo to tuned generator, and every binary slider of the bank at +-3 sigma judged
by the attribute model (the edit's sign chosen by the judge's label of the reconstruction, as bench_photo_encoder
does), with the original and the tuned generator. ``--projection N``: also the app's previous 100-step projection on
the first N photos (the issue's reconstruction bar). The seconds include scoring at the report steps (a few
AlexNet passes).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_photo_encoder import PHOTO_SEED, _t  # the same held-out photos, images as tensors


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo")
    p.add_argument("--photos", type=int, default=12)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--report", default="10,20,30", help="steps at which the reconstruction is scored")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--from-res", type=int, default=32, help="tune the blocks of this resolution and above")
    p.add_argument("--perceptual", type=float, default=0.3, help="weight of LPIPS-VGG next to the MSE")
    p.add_argument("--locality", type=float, default=0.0, help="weight of the locality regulariser (0: off)")
    p.add_argument("--locality-radius", type=float, default=3.0, help="distance of its latents, in units of sigma")
    p.add_argument("--mask", action="store_true",
                   help="weigh the tuning loss by the paste-back's head ellipse (align.head_mask): the room is not fitted")
    p.add_argument("--projection", type=int, default=0, help="photos also run through the 100-step projection")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    p.add_argument("--strips", default=None, help="an image: aligned | before | tuned | +3 edits before/tuned")
    return p.parse_args(argv)


def tune(synthesis, ws, target, args, w_stats, report, score, mask=None):
    """Tune a copy of `synthesis` so that ws draws target (inside `mask` [1, 1, R, R] if given); returns (tuned copy,
    {step: score(tuned)})."""
    from editor.projection import Perceptual

    F = torch.nn.functional
    syn = copy.deepcopy(synthesis).train(False)
    syn.requires_grad_(False)
    earlier = [r for r in syn.block_resolutions if r < args.from_res]
    params = [p for r, b in syn.blocks() if r >= args.from_res for p in b.parameters()]
    for p in params:
        p.requires_grad_(True)
    perc = Perceptual("vgg", size=64)
    perc.set_target(target)
    gen = torch.Generator().manual_seed(0)
    sigma = float(w_stats[1]) / np.sqrt(ws.shape[-1])  # W's spread per dimension: sigma / sqrt(w_dim)

    def prefix(net, w):
        if not earlier:
            return None
        with torch.no_grad():
            x, img = net.run_blocks(w, stop_resolution=earlier[-1])
        return earlier[-1], x, img

    start = prefix(syn, ws)
    opt = torch.optim.Adam(params, lr=args.lr)
    scores = {}
    for step in range(1, args.steps + 1):
        img = syn.run_blocks(ws, start=start)[1]
        if mask is not None:  # outside the head the target stands in: no loss there
            img = img * mask + target * (1 - mask)
        loss = F.mse_loss(img, target) + args.perceptual * perc(img).mean()
        if args.locality > 0:  # a latent near the pivot must draw what the original generator draws there
            u = torch.randn(ws.shape[-1], generator=gen)
            w_near = ws + args.locality_radius * sigma * u / u.norm()
            with torch.no_grad():
                ref = synthesis(w_near)
            near = syn.run_blocks(w_near, start=prefix(syn, w_near))[1]
            loss = loss + args.locality * F.mse_loss(near, ref)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step in report:
            with torch.no_grad():
                scores[step] = score(syn(ws))
    syn.requires_grad_(False)
    return syn, scores


def main(argv=None) -> int:
    args = _args(argv)
    torch.set_num_threads(args.threads)
    from PIL import Image

    from editor import align, toonfaces
    from editor.attributes import load_attribute_model
    from editor.engine import EditState
    from editor.projection import DEFAULT, PhotoProjector, _prepare_target, _to_uint8, lpips_model, psnr
    from editor.service import open_engine

    engine, _ = open_engine(args.model, device="cpu")
    G = engine.G
    alex = lpips_model("alex")
    judge = load_attribute_model()
    pivot = PhotoProjector(G, args.model, refine=None)
    if pivot.encoder is None:
        raise SystemExit(f"{args.model} has no bundled encoder")
    pivot.warm_up()
    baseline = PhotoProjector(G, args.model, encoder=None, config=DEFAULT)
    baseline._w_stats = pivot._w_stats
    binary = [s.name for s in toonfaces.ATTRIBUTES if s.kind == "binary" and s.name in engine.bank.attributes]
    report = {int(s) for s in args.report.split(",") if s} | {args.steps}
    rows, strips = [], []
    for i in range(args.photos):
        photo = toonfaces.render(PHOTO_SEED + i, 256, "photo").image
        t0 = time.perf_counter()
        aligned = align.align_photo(align.load_image(photo), pivot.landmarker, G.img_resolution)  # as the app
        ws = pivot.invert(aligned.image)[0]
        target = _prepare_target(aligned.image, G.img_resolution, "cpu")
        tgt8 = _to_uint8(target)
        head = align.head_mask(aligned.landmarks_in_crop(), G.img_resolution)  # what the paste-back uses

        def score(img):
            u8 = _to_uint8(img)
            err = ((u8.astype(np.float64) - tgt8) ** 2).mean(axis=2)
            head_mse = float((err * head).sum() / head.sum())
            return {"psnr": psnr(u8, tgt8), "lpips_alex": float(alex(_t(u8), _t(tgt8)).mean()),
                    "head_psnr": 10 * np.log10(255.0 ** 2 / max(head_mse, 1e-10))}

        with torch.no_grad():
            before = G.synthesis(ws)
        mask = torch.from_numpy(head)[None, None] if args.mask else None
        syn, scores = tune(G.synthesis, ws, target, args, pivot._w_stats, report, score, mask)
        seconds = time.perf_counter() - t0
        row = {"i": i, "seconds": seconds, "before": score(before), "tuned": scores}
        lat = engine.latent_from_array(ws[0].numpy(), origin="bench")
        with torch.no_grad():
            recs = {"before": _to_uint8(before), "tuned": _to_uint8(syn(ws))}
        cells = [tgt8, recs["before"], recs["tuned"]]
        for kind, net in (("before", G.synthesis), ("tuned", syn)):
            label = judge.predict(recs[kind][None]).labels()
            ok = {}
            for name in binary:
                want = 0 if int(label[name][0]) else 1
                e_ws = engine.edited_ws(EditState.create(lat, {name: 3.0 if want else -3.0}))
                with torch.no_grad():
                    im = _to_uint8(net(e_ws.float().reshape(1, G.num_ws, G.w_dim)))
                ok[name] = int(int(judge.predict(im[None]).labels()[name][0]) == want)
                if name in ("smiling", "eyeglasses", "beard"):
                    cells.append(im)
            row[f"edits_{kind}"] = ok
        if i < args.projection:
            t1 = time.perf_counter()
            ws_p, rec_p = baseline.invert(aligned.image)
            row["projection"] = {"seconds": time.perf_counter() - t1, **score(_t(rec_p))}
        rows.append(row)
        strips.append(np.concatenate(cells[:3] + [c for pair in zip(cells[3:6], cells[6:9]) for c in pair], axis=1))
        print(json.dumps({k: v for k, v in row.items() if not k.startswith("edits")}), flush=True)

    def mean(get):
        return float(np.mean([get(r) for r in rows]))

    summary = {"photos": len(rows), "median_seconds": float(np.median([r["seconds"] for r in rows])),
               "before": {k: mean(lambda r: r["before"][k]) for k in ("psnr", "lpips_alex", "head_psnr")},
               "tuned": {s: {k: mean(lambda r: r["tuned"][s][k]) for k in ("psnr", "lpips_alex", "head_psnr")}
                         for s in sorted(report)},
               "edit_success_before": mean(lambda r: np.mean(list(r["edits_before"].values()))),
               "edit_success_tuned": mean(lambda r: np.mean(list(r["edits_tuned"].values())))}
    with_proj = [r for r in rows if "projection" in r]
    if with_proj:
        summary["projection"] = {k: float(np.mean([r["projection"][k] for r in with_proj]))
                                 for k in ("psnr", "lpips_alex", "head_psnr", "seconds")}
        summary["projection"]["photos"] = len(with_proj)
        summary["tuned_same_photos"] = {k: float(np.mean([r["tuned"][args.steps][k] for r in with_proj]))
                                        for k in ("psnr", "lpips_alex", "head_psnr")}
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        config = {k: v for k, v in vars(args).items() if k not in ("json", "strips")}
        Path(args.json).write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                               "machine": f"2-core CPU (AVX-512), {args.threads} torch threads",
                                               "config": config, "summary": summary, "rows": rows}, indent=1) + "\n")
    if args.strips:
        Image.fromarray(np.concatenate(strips[:6], axis=0)).save(args.strips)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
