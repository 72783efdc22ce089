#!/usr/bin/env bash
# The Fashion-MNIST study at a real budget (docs/results/fashion-mnist.md), exactly as it is run:
#   scripts/fashion_mnist_full_study.sh train|eval [JOBS] [MODELS]
# train: every config of configs/fashion_mnist/study/ (or only the MODELS named, in that order)
#   in JOBS processes of one thread each (default 2, one per core); each run resumes where it
#   stopped, so the budget can be trained in several stretches (kill it any time).
# eval: each trained model with the paper protocol on 1,000 test images (Tables I-II: clean,
#   corruptions, attacks), Table III and the rigorous protocol on 500, the alignment suite
#   where the model has equilibria and the certified radius for Zubov-Net; records go to
#   docs/results/fashion_mnist_study/<model>_<suite>.json, each evaluation resumes too.
set -eu
WHAT=${1:?train or eval}
JOBS=${2:-2}
MODELS=${3:-"neural_ode cnn zubovnet paper_literal projnode sodef fxts lyanet neural_ode_pgd_at neural_ode_trades zubovnet_trades"}
export OMP_NUM_THREADS=1
Z=${ZUBOVNET:-zubovnet}
CFG=configs/fashion_mnist/study
OUT=docs/results/fashion_mnist_study
mkdir -p "$OUT" runs/fashion_mnist/study
train_one() {
  m=$1
  run=$($Z train "$CFG/$m.yaml" --print-out-dir)
  $Z train "$CFG/$m.yaml" train.progress=false train.tensorboard=false --resume \
    >> "$run.train.log" 2>&1 || { echo "training $m failed: see $run.train.log" >&2; return 1; }
  echo "trained $m"
}
eval_one() {
  m=$1
  run=$($Z train "$CFG/$m.yaml" --print-out-dir)
  [ -f "$run/final.pt" ] || [ -f "$run/checkpoint.pt" ] || { echo "skip $m: not trained" >&2; return 0; }
  suites="clean corruptions attacks strong rigorous"
  case $m in zubovnet*|paper_literal|sodef|lyanet|fxts) suites="$suites alignment" ;; esac
  case $m in zubovnet*|paper_literal) suites="$suites certify" ;; esac
  for s in $suites; do
    [ -f "$OUT/${m}_$s.json" ] && continue
    n=1000; case $s in strong|rigorous) n=500 ;; esac
    extra=""; [ $s = strong ] && extra="--surrogate runs/fashion_mnist/study/cnn"
    [ $s = strong ] && [ $m = cnn ] && extra="--surrogate runs/fashion_mnist/study/neural_ode"
    $Z eval "$run" --suite "$s" --n $n --seed 0 --no-progress --name "$m" $extra \
      --out "$OUT/${m}_$s.json" > "$run.eval_$s.log" 2>&1 || echo "eval $m $s failed: see $run.eval_$s.log" >&2
  done
  echo "evaluated $m"
}
export -f train_one eval_one
export Z CFG OUT
case $WHAT in
  train) printf '%s\n' $MODELS | xargs -P "$JOBS" -I{} bash -c 'train_one {}' ;;
  eval) printf '%s\n' $MODELS | xargs -P "$JOBS" -I{} bash -c 'eval_one {}' ;;
  *) echo "first argument: train or eval" >&2; exit 2 ;;
esac
