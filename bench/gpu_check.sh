#!/usr/bin/env bash
# One device call: GPU facts, protocol P end to end, gpu_bench (eager; batch 256 as is, padded to multiples of 64 and
# without cuDNN attention; compiled), the CUDA tests. Seven files come back, within the device tool's eight.
#
#     python -m bench.make_bundle      # here, once: bench/bundle/ (bf16 MiniLM, SQuAD subsets, wheels), then carry it
#     OUT=/tmp/gpu bash bench/gpu_check.sh
#
# Each part has its own time limit and runs whatever the one before did, so one failure still leaves the rest;
# everything lands in $OUT (log.txt plus one JSON per measurement). A CPU rehearsal of the script:
#     OUT=/tmp/g PYTHON=.venv/bin/python BENCH_EXTRA=--dry-run \
#         PROTOCOL_EXTRA='--max_steps 2 --max_train_samples 40 --max_eval_samples 10' bash bench/gpu_check.sh
set -u
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 QA_TEST_TOKENIZER=bench/bundle/minilm-bf16
PY=${PYTHON:-python3}
SQUAD=bench/bundle/squad
MODEL=bench/bundle/minilm-bf16
exec > >(tee -a "$OUT/log.txt") 2>&1

part() { echo; echo "=== $1 ($(date +%T))"; }

part packages
# That machine's tokenizers may be one that cuts long contexts short (0.23.1, 0.23.2); the bundle carries the pin.
pinned=$(sed -n 's/^tokenizers==//p' requirements.txt)
installed=$($PY -c "import tokenizers; print(tokenizers.__version__)" 2>/dev/null)
if [ "$installed" != "$pinned" ] && ls bench/bundle/wheels/tokenizers-"$pinned"-*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site bench/bundle/wheels/tokenizers-"$pinned"-*.whl \
        && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
echo "tokenizers: pinned $pinned, installed ${installed:-none}, used $($PY -c "import tokenizers; print(tokenizers.__version__)")"

part facts
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
$PY -c "import torch, transformers, sys; print(sys.version.split()[0], torch.__version__, torch.version.cuda, \
transformers.__version__, torch.cuda.get_device_name(0))"
nproc

part "protocol P end to end: train.py train, embedded MiniLM (bf16 copy), batch 16, lr 1e-4, 2 epochs"
start=$(date +%s.%N)
timeout 150 $PY train.py train --model_name_or_path $MODEL --train_file $SQUAD/train-v1.1-subset.json \
    --validation_file $SQUAD/dev-v1.1-subset.json --output_dir /tmp/protocol-p --overwrite_output_dir \
    --learning_rate 1e-4 --dataloader_num_workers 2 ${PROTOCOL_EXTRA:-} 2>&1 | tr '\r' '\n' | grep -v "^ *$" | tail -8
rc=${PIPESTATUS[0]}
end=$(date +%s.%N)
$PY - "$start" "$end" "$rc" "$OUT/protocol-p.json" <<'EOF'
import json, sys
from pathlib import Path
start, end, rc, output = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
run = Path("/tmp/protocol-p")
read = lambda name: json.loads((run / name).read_text()) if (run / name).exists() else None
info = read("run.json") or {}
report = {"process_wall_s": round(end - start, 2), "exit_code": rc, "status": info.get("status"),
          "step": info.get("step"), "train_seconds": info.get("train_seconds"), "eval_metrics": read("eval_metrics.json"),
          "config": info.get("config"), "run": {k: v for k, v in info.items() if k not in ("config",)}}
output.write_text(json.dumps(report, indent=1) + "\n")
print(json.dumps({k: report[k] for k in ("process_wall_s", "exit_code", "status", "step", "train_seconds")}))
print(json.dumps(report["eval_metrics"])[:400])
EOF

part "gpu_bench: MiniLM + BERT-base, batch 64, eager"
timeout 120 $PY -m bench.gpu_bench --output "$OUT/gpu.json" ${BENCH_EXTRA:-} | tail -3

part "gpu_bench: BERT-base, batch 256, eager"
timeout 90 $PY -m bench.gpu_bench --models bert-base --batch-size 256 --steps 60 --warmup-steps 10 --profile-steps 3 \
    --output "$OUT/gpu-batch256.json" ${BENCH_EXTRA:-} | tail -3

part "gpu_bench: BERT-base, batch 256, eager, lengths padded to multiples of 64 (fewer distinct shapes)"
timeout 90 $PY -m bench.gpu_bench --models bert-base --batch-size 256 --steps 60 --warmup-steps 10 --profile-steps 3 \
    --multiple-of 64 --no-eval --output "$OUT/gpu-batch256-multiple64.json" ${BENCH_EXTRA:-} | tail -3

part "gpu_bench: BERT-base, batch 256, eager, SDPA without cuDNN"
timeout 90 $PY -m bench.gpu_bench --models bert-base --batch-size 256 --steps 60 --warmup-steps 10 --profile-steps 3 \
    --no-cudnn-attention --no-eval --output "$OUT/gpu-batch256-no-cudnn.json" ${BENCH_EXTRA:-} | tail -3

part "CUDA tests"
timeout 150 $PY -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py tests/test_crash_safety.py 2>&1 | tail -25

part "gpu_bench: BERT-base, batch 256, torch.compile, training only"
TORCH_LOGS=recompiles timeout 210 $PY -m bench.gpu_bench --models bert-base --batch-size 256 --steps 30 --warmup-steps 10 --profile-steps 3 \
    --compile --no-eval --output "$OUT/gpu-compile.json" ${BENCH_EXTRA:-} | tail -3

part done
