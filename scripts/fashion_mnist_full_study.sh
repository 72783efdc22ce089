#!/usr/bin/env bash
# The Fashion-MNIST study at a real budget (docs/results/fashion-mnist.md), exactly as it is run:
#   scripts/fashion_mnist_full_study.sh train|train-ranks|eval|eval-ranks|stash|restore [JOBS] [MODELS]
# train: every config of configs/fashion_mnist/study/ (or only the MODELS named, in that order)
#   in JOBS processes of one thread each (default 2, one per core); each run resumes where it
#   stopped, so the budget can be trained in several stretches (kill it any time).
# train-ranks: each of the MODELS in turn as one torchrun job of JOBS processes (one thread
#   each, global batch unchanged: each rank takes batch/JOBS), for a model left to train alone
#   when the others are done; it resumes a run started by `train` and vice versa.
# eval: each trained model with the paper protocol on 1,000 test images (Tables I-II: clean,
#   corruptions, attacks), Table III and the rigorous protocol on 500, and for the Zubov-Net
#   models (the only ones with per-class regions {W_y < rho}) the alignment suite and the
#   certified radius; records go to docs/results/fashion_mnist_study/<model>_<suite>.json,
#   each evaluation resumes too.
# eval-ranks: the same records, each of the MODELS in turn, each suite sharded over one torchrun
#   job of JOBS processes (the record equals the one-process record; docs/evaluation.md).
# stash: copy each run's latest checkpoint (with its config, metrics and the equilibrium
#   assignment) to docs/results/fashion_mnist_study/in_progress/<model>/, so that a budget
#   longer than one sitting, or a finished run not yet evaluated, survives the loss of runs/;
#   restore: copy them back into runs/ where runs/ holds an older epoch or nothing (train then
#   resumes from there; eval evaluates a finished one).
set -eu
WHAT=${1:?train, train-ranks, eval, eval-ranks, stash or restore}
JOBS=${2:-2}
MODELS=${3:-"neural_ode cnn zubovnet paper_literal projnode sodef fxts lyanet neural_ode_pgd_at neural_ode_trades zubovnet_trades"}
export OMP_NUM_THREADS=1
Z=${ZUBOVNET:-zubovnet}
CFG=configs/fashion_mnist/study
OUT=docs/results/fashion_mnist_study
KEEP=$OUT/in_progress
mkdir -p "$OUT" runs/fashion_mnist/study
launcher() {  # the zubovnet command: one process, or (RANKS set) one torchrun job of JOBS ranks
  if [ -n "${RANKS:-}" ]; then
    echo "${TORCHRUN:-torchrun} --standalone --nproc_per_node $JOBS -m zubovnet.cli"
  else echo "$Z"; fi
}
train_one() {
  m=$1
  run=$($Z train "$CFG/$m.yaml" --print-out-dir)
  [ -n "${RANKS:-}" ] && echo "# $(date -u '+%F %T') resumed under torchrun, $JOBS ranks x 1 thread" >> "$run.train.log"
  $(launcher) train "$CFG/$m.yaml" train.progress=false train.tensorboard=false --resume \
    >> "$run.train.log" 2>&1 || { echo "training $m failed: see $run.train.log" >&2; return 1; }
  echo "trained $m${RANKS:+ ($JOBS ranks)}"
}
epoch_of() {  # the epoch of a run folder's latest checkpoint (0: none)
  [ -f "$1/checkpoints/latest.json" ] || { echo 0; return; }
  sed -n 's/.*"epoch": *\([0-9]*\).*/\1/p' "$1/checkpoints/latest.json"
}
epochs_of() {  # the epochs a config asks for
  python -c "from zubovnet.config import load_config; print(load_config('$CFG/$1.yaml').train.epochs)"
}
eval_one() {
  m=$1
  run=$($Z train "$CFG/$m.yaml" --print-out-dir)
  [ "$(epoch_of "$run")" = "$(epochs_of "$m")" ] || { echo "skip $m: not trained to the end" >&2; return 0; }
  # alignment and the certified radius need per-class Lyapunov functions (the PRoAs {W_y < rho}):
  # Zubov-Net's; the baselines' equilibria or anchors come with no such region. The quick
  # suites go first, the strong and rigorous ones (most of the time) last.
  suites="clean corruptions attacks"
  case $m in zubovnet*|paper_literal) suites="$suites alignment certify" ;; esac
  suites="$suites strong rigorous"
  for s in $suites; do
    [ -f "$OUT/${m}_$s.json" ] && continue
    n=1000; case $s in strong|rigorous) n=500 ;; esac
    # VNI-FGSM's surrogate: the study's CNN (the Neural ODE for the CNN itself), its run if
    # runs/ still holds it, else its shipped checkpoint (the same weights, the same name)
    sur=cnn; [ $m = cnn ] && sur=neural_ode
    src=runs/fashion_mnist/study/$sur
    [ -f "$src/checkpoints/latest.json" ] || src=pretrained:fashion_mnist-study-$sur
    extra=""; [ $s = strong ] && extra="--surrogate $src"
    rc=0   # eval-ranks: one torchrun job of JOBS processes per suite (docs/evaluation.md)
    $(launcher) eval "$run" --suite "$s" --images $n --seed 0 --no-progress --name "$m" $extra \
      --out "$OUT/${m}_$s.json" > "$run.eval_$s.log" 2>&1 || rc=$?
    # exit status 1: a check FLAGged (the record is written, the verdict is in it); 2: an error
    [ $rc -ge 2 ] && echo "eval $m $s failed: see $run.eval_$s.log" >&2
  done
  echo "evaluated $m"
}
stash_one() {
  m=$1
  run=$($Z train "$CFG/$m.yaml" --print-out-dir)
  e=$(epoch_of "$run")
  [ "$e" = 0 ] && return 0
  rm -rf "$KEEP/$m"; mkdir -p "$KEEP/$m/checkpoints"
  for f in config.yaml metrics.csv prepare.json; do [ -f "$run/$f" ] && cp "$run/$f" "$KEEP/$m/"; done
  cp "$run/checkpoints/latest.json" "$KEEP/$m/checkpoints/"
  p=$(sed -n 's/.*"path": *"\([^"]*\)".*/\1/p' "$run/checkpoints/latest.json")
  cp -r "$run/checkpoints/$p" "$KEEP/$m/checkpoints/"
  echo "stashed $m at epoch $e"
}
restore_one() {
  m=$1
  [ -d "$KEEP/$m" ] || return 0
  run=$($Z train "$CFG/$m.yaml" --print-out-dir)
  [ "$(epoch_of "$run")" -ge "$(epoch_of "$KEEP/$m")" ] && return 0
  rm -rf "$run"; mkdir -p "$(dirname "$run")"; cp -r "$KEEP/$m" "$run"
  echo "restored $m at epoch $(epoch_of "$run")"
}
export -f launcher train_one eval_one epoch_of epochs_of stash_one restore_one
export Z CFG OUT KEEP JOBS
case $WHAT in
  train) printf '%s\n' $MODELS | xargs -P "$JOBS" -I{} bash -c 'train_one {}' ;;
  train-ranks) export RANKS=1; for m in $MODELS; do train_one "$m"; done ;;
  eval-ranks) export RANKS=1; for m in $MODELS; do eval_one "$m"; done ;;
  eval) printf '%s\n' $MODELS | xargs -P "$JOBS" -I{} bash -c 'eval_one {}' ;;
  stash) for m in $MODELS; do stash_one "$m"; done ;;
  restore) for m in $MODELS; do restore_one "$m"; done ;;
  *) echo "first argument: train, train-ranks, eval, eval-ranks, stash or restore" >&2; exit 2 ;;
esac
