"""The quickstart's chain on a tiny generated dataset: make_synthetic_dataset.py -> convert_coco.py -> train.py
with configs/quickstart.yaml -> eval.py with overlays (the full run, scripts/quickstart.sh, takes ~5 minutes)."""
import json
import subprocess
import sys

from conftest import REPO_ROOT

CONFIG = str(REPO_ROOT / "configs" / "quickstart.yaml")


def run(*args):
    result = subprocess.run([sys.executable, *map(str, args)], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_quickstart_chain_trains_evaluates_and_draws(tmp_path):
    run(REPO_ROOT / "make_synthetic_dataset.py", "--output", tmp_path / "shapes", "--num_train", 8, "--num_val", 3)
    for split in ("train", "val"):
        run(REPO_ROOT / "convert_coco.py", "--coco_root", tmp_path / "shapes", "--split", split, "--output",
            tmp_path / f"mindrecord_{split}")
    run(REPO_ROOT / "train.py", "--config_path", CONFIG, "--mindrecord_dir", tmp_path / "mindrecord_train",
        "--output_dir", tmp_path / "train", "--solver.max_iter=3", "--solver.warmup_iters=1")
    losses = [json.loads(line) for line in (tmp_path / "train" / "metrics.json").read_text().splitlines()]
    assert [entry["iteration"] for entry in losses] == [0, 1, 2]
    run(REPO_ROOT / "eval.py", "--config_path", CONFIG, "--checkpoint_path", tmp_path / "train" / "model_final.ckpt",
        "--coco_root", tmp_path / "shapes", "--val_split", "val", "--output_dir", tmp_path / "eval", "--visualize", 2,
        "--test.visualize_score_thresh=0.0")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics) == {"bbox", "segm", "boundary"}
    assert len(list((tmp_path / "eval" / "visualize").glob("*.png"))) == 2
