"""The GPU run script (bench/gpu_paper.py), rehearsed on the CPU: it measures every paper-size step it names and
projects the paper configuration's wall time from them."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_script_measures_every_step_and_projects_the_paper_run(tmp_path):
    out = tmp_path / "gpu_paper.md"
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_paper", "--device", "cpu", "--steps", "1",
                           "--texture-batch", "2", "--resolutions", "16", "32", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert text.strip() == proc.stdout.strip()
    for step in ("paper SAE", "paper cGAN", "texture 16 px", "texture 32 px"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {step} |"))
        assert float(row.split("|")[3]) > 0  # ms/step measured
    # not measured: scaled from what was, and said so (the paper's batch is 16)
    assert "| texture 512 px |" in text and "(scaled from 32 px, from batch 2)" in text
    assert "| texture 16 px |" in text.split("## Projected")[1]
    hours = float(re.search(r"\| \*\*all\*\* \| \| \| \*\*([0-9.]+)\*\* \|", text).group(1))
    # the paper's SAE alone: 100 epochs x 424 steps at about 2 s per step on this CPU
    sae_row = next(line for line in text.split("## Projected")[1].splitlines() if line.startswith("| SAE |"))
    assert hours > float(sae_row.split("|")[4]) > 0
