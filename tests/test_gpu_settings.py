"""Settings meant for GPUs, exercised on the CPU: mixed-precision training of the real model with train.py, the
TF32 switch reaching MindSpore on GPU only, and the GPU environment of scripts/gpu_env.sh."""
import json
import math
import os
import subprocess
import sys

import mindspore as ms
import pytest

from conftest import REPO_ROOT
from maskrcnn_pointrend.cli import set_context
from maskrcnn_pointrend.config import load_config

ITERATIONS = 4


def run(*args):
    result = subprocess.run([sys.executable, *map(str, args)], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_mixed_precision_trains_the_quickstart_model_with_finite_losses(tmp_path):
    run(REPO_ROOT / "make_synthetic_dataset.py", "--output", tmp_path / "shapes", "--num_train", 4, "--num_val", 1)
    run(REPO_ROOT / "convert_coco.py", "--coco_root", tmp_path / "shapes", "--split", "train", "--output",
        tmp_path / "mindrecord")

    result = run(REPO_ROOT / "train.py", "--config_path", REPO_ROOT / "configs" / "quickstart.yaml",
                 "--mindrecord_dir", tmp_path / "mindrecord", "--output_dir", tmp_path / "train",
                 "--device_target=CPU", "--solver.mixed_precision=True", f"--solver.max_iter={ITERATIONS}",
                 "--solver.warmup_iters=1", "--solver.log_period=1", "--solver.images_per_device=2",
                 "--solver.ims_per_batch=2")

    assert "solver.mixed_precision on CPU: meant for testing there" in result.stderr
    rows = [json.loads(line) for line in (tmp_path / "train" / "metrics.json").read_text().splitlines()]
    assert [row["iteration"] for row in rows] == list(range(ITERATIONS))
    assert all(math.isfinite(value) for row in rows for value in row.values())
    # The loss scale starts at 2 ** 16 and halves on each overflow; once it has come down, updates apply.
    skipped = result.stderr.count("the gradients overflowed in float16; update skipped")
    assert skipped < ITERATIONS


@pytest.mark.parametrize("tf32", [True, False])
def test_the_tf32_setting_reaches_mindspore_on_gpu_only(tf32, monkeypatch):
    calls = []
    monkeypatch.setattr(ms, "set_context", lambda **kwargs: calls.append(("set_context", kwargs)))
    monkeypatch.setattr(ms, "set_device", lambda *args: calls.append(("set_device", args)))
    for name in ("conv_allow_tf32", "matmul_allow_tf32"):
        monkeypatch.setattr(ms.device_context.gpu.op_precision, name,
                            lambda value, name=name: calls.append((name, value)))

    set_context(load_config(["--device_target=CPU", f"--gpu_tf32={tf32}"]))
    assert [name for name, _ in calls] == ["set_context", "set_device"] and calls[1][1] == ("CPU", None)

    calls.clear()
    set_context(load_config(["--device_target=GPU", "--device_id=3", f"--gpu_tf32={tf32}"]))
    assert calls[1:] == [("set_device", ("GPU", 3)), ("conv_allow_tf32", tf32), ("matmul_allow_tf32", tf32)]


def source_gpu_env(venv, cuda_home=None):
    """Sources scripts/gpu_env.sh in bash with VENV=venv -> (its status, the CUDA_HOME it leaves, stderr)."""
    env = {key: value for key, value in os.environ.items() if key != "CUDA_HOME"}
    if cuda_home:
        env["CUDA_HOME"] = str(cuda_home)
    result = subprocess.run(["bash", "-c", f'VENV="{venv}"; source scripts/gpu_env.sh; echo "$? $CUDA_HOME"'],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    status, cuda_home = result.stdout.split()
    return int(status), cuda_home, result.stderr


def fake_toolkit(folder, release):
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "nvcc").write_text(f'#!/bin/sh\necho "Cuda compilation tools, release {release}, V{release}.1"\n')
    (folder / "bin" / "nvcc").chmod(0o755)
    return folder


def test_gpu_env_keeps_a_cuda_11_toolkit_and_otherwise_generates_a_cuda_home_mindspore_accepts(tmp_path):
    _, cuda_home, _ = source_gpu_env(tmp_path, fake_toolkit(tmp_path / "cuda-11.2", "11.2"))
    assert cuda_home == str(tmp_path / "cuda-11.2")

    status, cuda_home, stderr = source_gpu_env(tmp_path, fake_toolkit(tmp_path / "cuda-12.4", "12.4"))
    if cuda_home != "/usr/local/cuda":  # unless this machine has a CUDA 11 toolkit there
        assert cuda_home == str(tmp_path / "cuda11_home")
        nvcc = tmp_path / "cuda11_home" / "bin" / "nvcc"
        assert subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout == \
            "Cuda compilation tools, release 11.8, V11.8.89\n"
        assert subprocess.run([nvcc, "-c", "x.cu"], capture_output=True).returncode == 1
        # MindSpore's GPU plugin loader reads the release from it (then needs the CUDA libraries to load it).
        loader = subprocess.run([sys.executable, "-c", "import mindspore as ms; ms.set_context(device_target='GPU');"
                                 " ms.ops.add(ms.Tensor(1.0), 1.0)"], cwd=tmp_path, capture_output=True, text=True,
                                env={**os.environ, "CUDA_HOME": cuda_home, "GLOG_v": "1"}, timeout=300)
        assert "Get cuda version [11.8] from env CUDA_HOME" in loader.stderr + loader.stdout
    if status != 0:  # the CUDA 11 wheels of requirements-gpu.txt are not installed here
        assert "is not in" in stderr and "pip install -r requirements-gpu.txt" in stderr
