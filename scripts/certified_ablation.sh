#!/usr/bin/env bash
# The certified-regions ablation on Fashion-MNIST (docs/certified.md), exactly as it is run:
#   scripts/certified_ablation.sh train|eval [JOBS] [MODELS]
# train: every config of configs/fashion_mnist/certified/ (or only the MODELS named) in JOBS
#   processes of one thread each; runs resume. `invariant` is not trained: with
#   model.invariance.train false its training is the default's, step for step (tested), so its
#   row evaluates the default's weights with the regions made invariant (--set).
# eval: each trained model on the first 1,000 test images (clean, corruptions, alignment with the
#   reverse inclusion, certify) and on the first 200 (clean, rigorous at 8/255, certify: the
#   certificate checked per image against the rigorous worst case); records in
#   docs/results/certified/<model>_{main,rigorous}.json; each evaluation resumes.
set -eu
WHAT=${1:?train or eval}
JOBS=${2:-2}
MODELS=${3:-"default invariant inside certified lipschitz_cnn"}
export OMP_NUM_THREADS=1
Z=${ZUBOVNET:-zubovnet}
CFG=configs/fashion_mnist/certified
OUT=docs/results/certified
mkdir -p "$OUT" runs/fashion_mnist/certified
source_of() {  # the config a model's weights are trained with, and the --set of its evaluation
  case $1 in invariant) echo "default --set model.invariance.enabled=true" ;; *) echo "$1" ;; esac
}
train_one() {
  m=$1
  [ "$m" = invariant ] && { echo "invariant: the default's weights (not trained)"; return 0; }
  run=$($Z train "$CFG/$m.yaml" --print-out-dir)
  $Z train "$CFG/$m.yaml" train.progress=false train.tensorboard=false --resume \
    >> "$run.train.log" 2>&1 || { echo "training $m failed: see $run.train.log" >&2; return 1; }
  echo "trained $m"
}
eval_one() {
  m=$1
  set -- $(source_of "$m")
  src=$1; shift
  run=$($Z train "$CFG/$src.yaml" --print-out-dir)
  [ -f "$run/checkpoints/latest.json" ] || { echo "skip $m: $src not trained" >&2; return 0; }
  for group in main rigorous; do
    [ -f "$OUT/${m}_$group.json" ] && continue
    case $group in
      main) suites=clean,corruptions,alignment,certify; n=1000 ;;
      rigorous) suites=clean,rigorous,certify; n=200 ;;
    esac
    case $m in lipschitz_cnn) suites=${suites/,alignment/} ;; esac
    rc=0
    $Z eval "$run" "$@" --suite "$suites" --images $n --seed 0 --no-progress --name "$m" \
      --out "$OUT/${m}_$group.json" > "$run.eval_${m}_$group.log" 2>&1 || rc=$?
    # exit status 1: a check FLAGged (the record is written, the verdict is in it); 2: an error
    [ $rc -ge 2 ] && echo "eval $m $group failed: see $run.eval_${m}_$group.log" >&2
  done
  echo "evaluated $m"
}
export -f source_of train_one eval_one
export Z CFG OUT
case $WHAT in
  train) printf '%s\n' $MODELS | xargs -P "$JOBS" -I{} bash -c 'train_one {}' ;;
  eval) printf '%s\n' $MODELS | xargs -P "$JOBS" -I{} bash -c 'eval_one {}' ;;
  *) echo "first argument: train or eval" >&2; exit 2 ;;
esac
