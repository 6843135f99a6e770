"""`python -m editor slider-from-words`: a new slider from a prompt pair, fitted on a sample cache's CLIP embeddings."""

from __future__ import annotations

NAME = "slider-from-words"
HELP = "Make a slider from words (CLIP prompts scored on cached sample embeddings, fitted in W) and save it."
EXAMPLES = """  python -m editor sample --model demo --n 10000 --labeler clip:ViT-B-32:laion2b_s34b_b79k \\
      --out samples/demo-clip
  python -m editor slider-from-words --samples samples/demo-clip --positive "a photo of a smiling face" \\
      --negative "a photo of a face with a neutral expression" --name smile --bank directions/demo.safetensors
  python -m editor slider-from-words --samples samples/demo-clip --positive "a face with freckles"  # vs neutral"""


def add_arguments(parser) -> None:
    parser.add_argument("--samples", required=True, help="sample cache folder holding CLIP image embeddings")
    parser.add_argument("--clip", default="clip:ViT-B-32:laion2b_s34b_b79k",
                        help="the cache's CLIP labeller: clip:MODEL:PRETRAINED (MODEL may be a config .json)")
    parser.add_argument("--positive", required=True, help="prompt for samples that have the attribute")
    parser.add_argument("--negative", default="", help="prompt for samples that don't (default: 'a photo of a face')")
    parser.add_argument("--name", default="", help="slider name (default: from the positive prompt)")
    parser.add_argument("--space", default="w", help="w or w+:A-B (default w)")
    parser.add_argument("--method", default="lda", help="lda | logreg | svm | meandiff (default lda)")
    parser.add_argument("--share", type=float, default=0.25, help="confident top/bottom share (default 0.25)")
    parser.add_argument("--bank", default=None, help="bank file to add the slider to (created if missing); "
                                                     "without it nothing is written")
    parser.add_argument("--device", default="cpu", help="device of the CLIP text encoder (default cpu)")


def run(args) -> int:
    import json
    import time
    from pathlib import Path

    from editor.bank import GeneratorInfo
    from editor.custom_sliders import SliderFitOptions, add_to_bank, fmt_accuracy, open_word_maker
    from editor.labelers import make_labeler

    if not args.clip.startswith("clip"):
        raise ValueError(f"--clip must be a CLIP labeller spec (clip:MODEL:PRETRAINED), got {args.clip!r}")
    clip = make_labeler(args.clip, device=args.device)
    options = SliderFitOptions(method=args.method, share=args.share)
    maker = open_word_maker(args.samples, clip, options=options)
    t0 = time.perf_counter()
    entry = maker.make(args.positive, args.negative or None, attribute=args.name or None, space=args.space)
    dt = time.perf_counter() - t0
    print(f"{entry.name}: '{entry.extra['positive']}' vs '{entry.extra['negative']}' -> validation accuracy "
          f"{fmt_accuracy(entry.val_accuracy)} ({entry.n_samples} training samples of {maker.n}), sigma "
          f"{entry.sigma:.3f}, {dt:.2f} s")
    if args.bank:
        gen = json.loads((Path(args.samples) / "meta.json").read_text())["generator"]
        info = GeneratorInfo(model_id=gen["model_id"], z_dim=gen["z_dim"], w_dim=gen["w_dim"], num_ws=gen["num_ws"])
        bank = add_to_bank(args.bank, [entry], info, note=f"python -m editor {NAME} (custom sliders)",
                           source=gen.get("source"))
        print(f"saved into {args.bank} ({len(bank.entries)} directions)")
    return 0
