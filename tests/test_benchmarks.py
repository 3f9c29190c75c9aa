"""The benchmarks stay runnable: the prepared GPU script's measurements, run on the CPU in miniature."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_runs_on_the_cpu_and_reports_every_variant(tmp_path):
    """``benchmarks/gpu.py --device cpu``: the float64 agreement of minidraw and the plain DRAW passes (the
    script asserts it before timing), and every eager variant has a positive time; ``gpu.sh`` parses."""
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--device", "cpu", "--configs",
                    "aligndraw_mnist_small", "--batch", "4", "--pairs", "1", "--no-compile", "--json", str(out)],
                   check=True, env=env, capture_output=True, timeout=300)
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert row["float64_max_grad_rel_diff"] < 1e-7
    assert set(row["variants"]) == {"plain fp32", "minidraw fp32", "minidraw bf16"}
    assert all(v["ms"] > 0 and v["images_per_s"] > 0 for v in row["variants"].values())
    assert result["roofline_gflops"]["fp32"] > 0 and result["sample_16_ms"] > 0
    subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu.sh")], check=True)


def test_gpu_benchmark_without_a_gpu_says_so_in_one_line():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--device", "cuda"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "no CUDA GPU here" in r.stderr and "Traceback" not in r.stderr
