#!/usr/bin/env bash
# Served throughput of a decoupled student (k = 2 of 6, compression ratio 4, int8 passage states) against its
# teacher's full forward, on the SQuAD part-a cache, with BM25 retrieval of the top 5 windows: both served by
# `decouple serve` on this machine and loaded in turn by `decouple loadtest` at concurrency 1, 8 and 32, then
# `decouple bench` at the same shapes (batch = top-K windows). Writes results/squad/serve/{load.jsonl,bench.json}.
#
# Run from the repository root, with the data of `python results/make_data.py ../shared/data data`:
#     bash results/squad/serve/run.sh
# The teacher and student are trained on 64 examples only: the figures are of speed and retrieval, which do not
# depend on how well the weights are trained (the same shapes run the same FLOPs); their EM/F1 mean nothing.
set -euo pipefail
export RAY_ADDRESS=local
RUNS=runs/serve OUT=results/squad/serve
QUESTIONS=data/squad-a-eval6.json  # the 6 held-out articles' 1,033 questions
COMMON=(--task qa --max-question-len 32 --max-passage-len 192 --doc-stride 64 --max-train-examples 64
        --max-eval-examples 64 --epochs 1 --no-tracking)
SERVE=(--cpus-per-replica 2 --max-batch-size 8 --top-k 5)
start=$(date +%s)
[ -d $RUNS/teacher ] || decouple train --mode teacher --model minilm-l6 --data data/squad-a-train18.json \
    --eval-data $QUESTIONS "${COMMON[@]}" --output-dir $RUNS/teacher
[ -d $RUNS/student ] || decouple train --mode student --teacher $RUNS/teacher --split 2 --compression-ratio 4 \
    --cache-dtype int8 --data data/squad-a-train18.json --eval-data $QUESTIONS "${COMMON[@]}" --output-dir $RUNS/student
decouple cache build --model $RUNS/student --data ../shared/data/squad-v1.1-dev-part-a.json --out $RUNS/cache \
    --workers 1 --cpus-per-worker 1
rm -f $OUT/load.jsonl
for served in "student --model $RUNS/student" "teacher --model $RUNS/teacher --baseline full"; do
  set -- $served; name=$1; shift
  decouple serve "$@" --cache $RUNS/cache --port 8000 "${SERVE[@]}" > $RUNS/serve-$name.log 2>&1 &
  pid=$!
  for _ in $(seq 1 150); do curl -sf localhost:8000/healthz > /dev/null && break; sleep 2; done
  for c in 1 8 32; do
    decouple loadtest http://127.0.0.1:8000 --questions $QUESTIONS --concurrency $c --requests 300 --warmup 20 \
        --json >> $OUT/load.jsonl
  done
  kill -INT $pid; wait $pid || true
done
decouple bench --model $RUNS/student --splits 0,2 --cache-dtype int8 --compression-ratio 4 --batch-size 5 \
    --max-question-len 32 --max-passage-len 192 --threads 2 --repeats 5 --json | tail -1 > $OUT/bench.json
echo "took $(( $(date +%s) - start )) s"
