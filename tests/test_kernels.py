"""The CPU kernel caps that make x86 machines compute the same bits, set before torch loads."""
import subprocess
import sys
from pathlib import Path

from pipelines.kernels import CPU_KERNEL_ENV, pin_cpu_kernels

ROOT = Path(__file__).resolve().parents[1]


def test_caps_are_set_unless_the_user_chose():
    env = {"MKL_CBWR": "COMPATIBLE"}
    assert pin_cpu_kernels(env, "x86_64") == {**CPU_KERNEL_ENV, "MKL_CBWR": "COMPATIBLE"}
    assert pin_cpu_kernels({"SSGAN_NATIVE_KERNELS": "1"}, "x86_64") == {}
    assert pin_cpu_kernels({}, "aarch64") == {}


def test_the_stage_command_pins_them_before_torch_loads():
    """What dvc.yaml runs (`python -m ssgan`): torch in that process reports the capped capability."""
    code = ("import runpy, sys; sys.argv = ['ssgan', '--help']\n"
            "try:\n    runpy.run_module('ssgan', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "import os, torch; print(os.environ.get('ATEN_CPU_CAPABILITY'), torch.backends.cpu.get_cpu_capability())")
    env = {k: v for k, v in __import__("os").environ.items() if k not in CPU_KERNEL_ENV and k != "SSGAN_NATIVE_KERNELS"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    last = out.stdout.strip().splitlines()[-1].split()
    import platform
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert last[0] == "avx2" and last[1] in ("AVX2", "DEFAULT"), out.stdout
