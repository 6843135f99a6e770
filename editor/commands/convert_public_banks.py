"""`python -m editor convert-public-banks`: the public FFHQ direction files -> directions/ffhq-1024.safetensors."""

from __future__ import annotations

NAME = "convert-public-banks"
HELP = "Convert the public FFHQ direction files (InterFaceGAN Z, e4e/PTI W, GANSpace) into a bank with provenance."
EXAMPLES = """  python -m editor convert-public-banks --src ../shared/public-banks \\
      --out directions/ffhq-1024.safetensors
  python -m editor convert-public-banks --pcs 80   # every GANSpace component as a slider"""


def add_arguments(parser) -> None:
    parser.add_argument("--src", default="../shared/public-banks",
                        help="folder with interfacegan-stylegan2-ffhq-z/ and e4e-stylegan2-ffhq-w/")
    parser.add_argument("--out", default="directions/ffhq-1024.safetensors", help="bank file to write")
    parser.add_argument("--model", default="ffhq-1024", help="registry name the directions belong to")
    parser.add_argument("--pcs", type=int, default=10, help="raw GANSpace components offered as pcK sliders (10)")
    parser.add_argument("--no-z", action="store_true", help="leave out the 40 InterFaceGAN Z boundaries")


def run(args) -> int:
    from pathlib import Path

    from editor.bank import save_bank
    from editor.public_banks import convert_public_banks, licence_notice

    out = Path(args.out)
    command = (f"python -m editor {NAME} --src {args.src} --out {args.out} --model {args.model} --pcs {args.pcs}"
               + (" --no-z" if args.no_z else ""))
    bank = convert_public_banks(args.src, model=args.model, n_pcs=args.pcs, include_z=not args.no_z, command=command)
    save_bank(bank, out)
    notice = out.with_name(out.name.replace(".safetensors", "") + ".LICENSES.md")
    notice.write_text(licence_notice(args.src))
    kinds = {}
    for e in bank.entries:
        kinds[str(e.space.kind)] = kinds.get(str(e.space.kind), 0) + 1
    print(f"wrote {out}: {len(bank.entries)} directions ({', '.join(f'{v} {k}' for k, v in kinds.items())}) for "
          f"{bank.generator.model_id}; licences in {notice}")
    return 0
