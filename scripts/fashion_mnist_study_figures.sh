#!/usr/bin/env bash
# The figures of the Fashion-MNIST study at 12,000 steps (docs/results/fashion-mnist.md),
# exactly as they are drawn, from its committed records and kept runs:
#   scripts/fashion_mnist_study_figures.sh [TSNE_MODELS]
# dynamics: the training curves of every kept run (docs/results/fashion_mnist_study/in_progress);
# curves: accuracy vs eps and vs severity from every model's attacks and corruptions records;
# alignment: AR vs horizon, per shell and per class from the alignment records;
# tsne: h(T) of the TSNE_MODELS (default "cnn neural_ode zubovnet"; their runs must be in runs/,
#   see `scripts/fashion_mnist_full_study.sh restore`), clean / FGSM 8/255 / Gaussian noise;
#   "none" skips it (it is the slow one, about 10 minutes on one core).
set -eu
export OMP_NUM_THREADS=1
Z=${ZUBOVNET:-zubovnet}
REC=docs/results/fashion_mnist_study
KEEP=$REC/in_progress
FIG=$REC/figures
TSNE=${1:-"cnn neural_ode zubovnet"}
mkdir -p "$FIG"
label() { python scripts/fashion_mnist_study_report.py --label "$1"; }  # the tables' labels
ALL="cnn neural_ode projnode sodef fxts lyanet paper_literal zubovnet neural_ode_pgd_at neural_ode_trades zubovnet_trades"
join() { local IFS=,; echo "$*"; }
dyn=(); dlab=(); cur=(); clab=(); ali=(); alab=()
for m in $ALL; do
  [ -f "$KEEP/$m/metrics.csv" ] && [ -f "$REC/${m}_clean.json" ] && { dyn+=("$KEEP/$m/metrics.csv"); dlab+=("$(label $m)"); }
  if [ -f "$REC/${m}_attacks.json" ] && [ -f "$REC/${m}_corruptions.json" ]; then
    cur+=("$REC/${m}_corruptions.json" "$REC/${m}_attacks.json"); clab+=("$(label $m)")  # one per model: records merge by name
  fi
  [ -f "$REC/${m}_alignment.json" ] && { ali+=("$REC/${m}_alignment.json"); alab+=("$(label $m)"); }
done
$Z figures dynamics "${dyn[@]}" --labels "$(join "${dlab[@]}")" --out "$FIG" --name dynamics
$Z figures curves "${cur[@]}" --labels "$(join "${clab[@]}")" --out "$FIG" --name curves
[ ${#ali[@]} -gt 0 ] && $Z figures alignment "${ali[@]}" --labels "$(join "${alab[@]}")" --out "$FIG" --name alignment
[ "$TSNE" = none ] && exit 0
runs=(); tlab=()
for m in $TSNE; do
  runs+=("$($Z train "configs/fashion_mnist/study/$m.yaml" --print-out-dir)"); tlab+=("$(label $m)")
done
$Z figures tsne "${runs[@]}" --labels "$(join "${tlab[@]}")" --out "$FIG" --name tsne \
  --n-per-class 400 --seed 0
