#!/usr/bin/env bash
# The alignment ablation (docs/results/alignment.md), exactly as it was run:
#   scripts/alignment_ablation.sh digits|fashion_mnist|synthetic2d [JOBS] [SUITES] [VARIANTS]
# trains every config of configs/<dataset>/alignment/ (synthetic2d: paper_literal, cla_fc and
# zubovnet), or only the VARIANTS named (e.g. "paper_literal aligned"), in JOBS processes of one thread each (default 2, one per core), resuming finished or
# interrupted runs, then evaluates each with SUITES (default: alignment corruptions) and copies
# the records to docs/results/alignment/<dataset>/<variant>_<suite>.json.
set -eu
DS=${1:?dataset: digits, fashion_mnist or synthetic2d}
JOBS=${2:-2}
SUITES=${3:-alignment corruptions}
VARIANTS=${4:-}
export OMP_NUM_THREADS=1
Z=${ZUBOVNET:-zubovnet}
case $DS in
  digits) N=360 ;;
  fashion_mnist) N=1000 ;;
  synthetic2d) N=1000 ;;
  *) echo "unknown dataset $DS" >&2; exit 2 ;;
esac
if [ "$DS" = synthetic2d ]; then
  CONFIGS="configs/synthetic2d/paper_literal.yaml configs/synthetic2d/cla_fc.yaml configs/synthetic2d/zubovnet.yaml"
else
  CONFIGS=$(ls configs/$DS/alignment/[!_]*.yaml)
fi
if [ -n "$VARIANTS" ]; then
  CONFIGS=$(for v in $VARIANTS; do ls configs/$DS/alignment/$v.yaml; done)
fi
OUT=docs/results/alignment/$DS
mkdir -p "$OUT"
one() {   # train (resuming) then evaluate one config
  cfg=$1
  name=$(basename "$cfg" .yaml)
  run=$($Z train "$cfg" --print-out-dir)
  mkdir -p "$(dirname "$run")"
  $Z train "$cfg" train.progress=false train.tensorboard=false --resume > "$run.train.log" 2>&1 || {
    echo "training $cfg failed: see $run.train.log" >&2; return 1; }
  for s in $SUITES; do
    n=$N; [ "$s" = rigorous ] && n=200
    $Z eval "$run" --suite "$s" --n $n --seed 0 --no-progress --name "$name" \
      --out "$OUT/${name}_$s.json" > "$OUT/${name}_$s.txt" 2>&1 || true
  done
  echo "done $name"
}
export -f one
export Z N OUT SUITES
printf '%s\n' $CONFIGS | xargs -P "$JOBS" -I{} bash -c 'one {}'
