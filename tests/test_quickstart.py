"""The quickstart's chain on a small generated dataset: make_synthetic_dataset.py -> convert_coco.py -> train.py
with configs/quickstart.yaml on a short schedule -> eval.py with overlays. The model must learn: AP far above
what chance gives. The full run, scripts/quickstart.sh, takes ~5 minutes."""
import json
import subprocess
import sys

from conftest import REPO_ROOT

CONFIG = str(REPO_ROOT / "configs" / "quickstart.yaml")


def run(*args):
    result = subprocess.run([sys.executable, *map(str, args)], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


# The short schedule (iterations of 4 images; warmup over half of it, as the quickstart's 50 of 300 would diverge
# here) reaches segm AP 0.546 and bbox AP 0.432 on the 8 val images (deterministic on a given CPU; 135 s on the
# 2-core machine); the bounds leave room for other CPUs' float rounding.
ITERATIONS = 100
MIN_SEGM_AP = 0.3
MIN_BBOX_AP = 0.2


def test_quickstart_chain_learns_evaluates_and_draws(tmp_path):
    run(REPO_ROOT / "make_synthetic_dataset.py", "--output", tmp_path / "shapes", "--num_train", 32, "--num_val", 8)
    for split in ("train", "val"):
        run(REPO_ROOT / "convert_coco.py", "--coco_root", tmp_path / "shapes", "--split", split, "--output",
            tmp_path / f"mindrecord_{split}")
    run(REPO_ROOT / "train.py", "--config_path", CONFIG, "--mindrecord_dir", tmp_path / "mindrecord_train",
        "--output_dir", tmp_path / "train", f"--solver.max_iter={ITERATIONS}",
        f"--solver.steps=[{ITERATIONS * 4 // 5}]", f"--solver.warmup_iters={ITERATIONS // 2}")
    losses = [json.loads(line)["total_loss"] for line in (tmp_path / "train" / "metrics.json").read_text().splitlines()]
    assert len(losses) == ITERATIONS
    assert sum(losses[-10:]) < 0.6 * sum(losses[:10])
    run(REPO_ROOT / "eval.py", "--config_path", CONFIG, "--checkpoint_path", tmp_path / "train" / "model_final.ckpt",
        "--coco_root", tmp_path / "shapes", "--val_split", "val", "--output_dir", tmp_path / "eval", "--visualize", 2,
        "--test.visualize_score_thresh=0.0")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics) == {"bbox", "segm", "boundary"}
    assert metrics["segm"]["AP"] >= MIN_SEGM_AP and metrics["bbox"]["AP"] >= MIN_BBOX_AP, metrics
    assert len(list((tmp_path / "eval" / "visualize").glob("*.png"))) == 2
