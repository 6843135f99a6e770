#!/usr/bin/env bash
# Rebuilds everything that is derived from the bundled demo generator's weights, after checkpoints/demo/ got new
# ones (a longer distillation run): the direction banks, the photo encoder (warm-started from the previous one), and
# the measurements quoted in checkpoints/demo/README.md and docs/photos.md. CPU, about an hour on 2 cores.
#
#   bash scripts/demo_assets.sh [ENCODER_MINUTES]      # default 25
#
# Steps that run side by side take one thread each. Outputs: directions/demo.safetensors, directions/demo-truth.
# safetensors, checkpoints/demo/encoder.safetensors, docs/demo_model/{bar_quality,bar_sliders}.json, the strips and
# samples, docs/photos/encoder.json and its example sheets. Logs in runs/demo-assets/.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 PYTHONPATH=.
minutes="${1:-25}"
logs=runs/demo-assets
mkdir -p "$logs"
rm -rf samples/demo-4000  # the sample cache belongs to the old weights (a new one is refused anyway)

echo "[1/4] direction banks (judge labels, truth labels) and the photo encoder, side by side"
nice -n 5 python -m editor build-bank --model demo --n 4000 --labeler toon --samples samples/demo-4000 \
  > "$logs/bank.log" 2>&1 &
bank=$!
nice -n 5 python -m editor train-encoder --model demo --out runs/encoder-new --init checkpoints/demo/encoder.safetensors \
  --minutes "$minutes" --lr 5e-4 --threads 1 > "$logs/encoder.log" 2>&1 &
encoder=$!
wait "$bank"
nice -n 5 python -m editor build-bank --model demo --n 4000 --labeler truth --methods ridge,svm,logreg,meandiff,partial \
  --samples samples/demo-4000 --out directions/demo-truth.safetensors > "$logs/bank-truth.log" 2>&1

echo "[2/4] the generator against the bar (quality, sliders, strips, samples)"
nice -n 5 python -m benchmarks.bench_demo_model --model demo --num 1000 --slider-faces 0 \
  --json docs/demo_model/bar_quality.json --sheet checkpoints/demo/samples.png > "$logs/bar-quality.log" 2>&1
nice -n 5 python -m benchmarks.bench_demo_model --model demo --num 200 --slider-faces 100 \
  --json docs/demo_model/bar_sliders.json --strips docs/demo_model/strips.jpg > "$logs/bar-sliders.log" 2>&1

echo "[3/4] waiting for the encoder, then exporting it"
wait "$encoder"
python -m editor train-encoder --model demo --out runs/encoder-new --export checkpoints/demo/encoder.safetensors \
  > "$logs/encoder-export.log" 2>&1

echo "[4/4] the photo path with the new encoder"
nice -n 5 python -m benchmarks.bench_photo_encoder --model demo --photos 50 --generated 50 --baseline 0 \
  --methods encoder,encoder+refine --json docs/photos/encoder.json --examples docs/photos/encoder_examples.png \
  > "$logs/photo.log" 2>&1
echo "done: logs in $logs"
