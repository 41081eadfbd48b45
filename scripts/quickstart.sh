#!/usr/bin/env bash
# The main job on an embedded default, end to end on a CPU with nothing downloaded:
#   a generated COCO-format shapes dataset -> MindRecord -> PointRend trained from scratch
#   (configs/quickstart.yaml) -> COCO bbox / segm / Boundary AP -> overlays of val images.
# Creates .venv at the repo root with the pinned requirements first (once). Everything it writes goes to
# $QUICKSTART_DIR (default output/quickstart), which is replaced on every run.
set -euo pipefail
source "$(dirname "$0")/venv.sh"
cd "$REPO_ROOT"

WORK="${QUICKSTART_DIR:-output/quickstart}"
CONFIG=configs/quickstart.yaml
START=$(date +%s)
step() { printf '\n[quickstart %4ds] %s\n' "$(( $(date +%s) - START ))" "$*"; }

if [ -e "$WORK" ] && [ ! -f "$WORK/.quickstart" ]; then
    echo "quickstart: $WORK exists and was not made by this script; set QUICKSTART_DIR to another folder" >&2
    exit 1
fi
rm -rf "$WORK"
mkdir -p "$WORK"
touch "$WORK/.quickstart"

step "generating the synthetic shapes dataset (COCO layout) in $WORK/shapes"
python make_synthetic_dataset.py --output "$WORK/shapes"

step "converting it to MindRecord"
for split in train val; do
    python convert_coco.py --coco_root "$WORK/shapes" --split "$split" --output "$WORK/mindrecord_$split" --workers 2
done

step "training PointRend from scratch ($CONFIG)"
python train.py --config_path "$CONFIG" --mindrecord_dir "$WORK/mindrecord_train" --output_dir "$WORK/train"

step "evaluating on the val split, with overlays of 8 images"
python eval.py --config_path "$CONFIG" --checkpoint_path "$WORK/train/model_final.ckpt" --coco_root "$WORK/shapes" \
    --val_split val --output_dir "$WORK/eval" --visualize 8

step "done"
python - "$WORK" <<'EOF'
import json
import sys

work = sys.argv[1]
metrics = json.load(open(f"{work}/eval/metrics.json"))
print("val split: " + ", ".join(f"{kind} AP {metrics[kind]['AP']:.3f}" for kind in ("bbox", "segm", "boundary")))
segm = metrics["segm"]["AP"]
print(f"segm AP {segm:.3f} {'meets' if segm >= 0.6 else 'is BELOW'} the quickstart's target of 0.6")
print(f"training log:     {work}/train/train_rank0.log (per iteration: {work}/train/metrics.json)")
print(f"checkpoint:       {work}/train/model_final.ckpt")
print(f"COCO summaries:   {work}/eval/eval.log")
print(f"per-class tables: {work}/eval/per_category_ap.txt (and .csv)")
print(f"overlays:         {work}/eval/visualize/")
EOF
