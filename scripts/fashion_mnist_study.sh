#!/usr/bin/env bash
# The Fashion-MNIST CPU study (docs/results/fashion-mnist-small-budget.md), exactly as it was run.
# Training: Zubov-Net in one process, Neural ODE then CNN in another (2 cores, 1 thread each).
# Evaluation: paper protocol (Tables I-II) on 1,000 test images, Table III and the rigorous
# protocol on the first 200.  Tables and figures: `zubovnet reproduce fashion-mnist-study`.
set -eu
export OMP_NUM_THREADS=1
Z=${ZUBOVNET:-zubovnet}
R=runs/fashion_mnist
mkdir -p $R/records
$Z train configs/fashion_mnist/zubovnet.yaml train.progress=false &
( $Z train configs/fashion_mnist/neural_ode.yaml train.progress=false
  $Z train configs/fashion_mnist/cnn.yaml train.progress=false )
wait
for m in cnn neural_ode zubovnet; do
  for s in clean corruptions attacks; do
    $Z eval $R/$m --suite $s --n 1000 --seed 0 --no-progress --name $m --out $R/records/${m}_$s.json
  done
  sur=$R/cnn; [ $m = cnn ] && sur=$R/neural_ode
  $Z eval $R/$m --suite strong --n 200 --seed 0 --no-progress --name $m --surrogate $sur --out $R/records/${m}_strong.json
  $Z eval $R/$m --suite rigorous --n 200 --seed 0 --no-progress --name $m --out $R/records/${m}_rigorous.json
  for s in corruptions attacks; do cp $R/records/${m}_$s.json $R/$m/eval_$s.json; done
done
$Z reproduce fashion-mnist-study --device cpu --threads 1
$Z profile feedforward neural_ode projnode sodef fxts lyanet zubovnet --config configs/fashion_mnist/_data.yaml \
  --dataset fashion_mnist --steps 5 --threads 1 --epoch 1 --out runs/profile/fashion_mnist.json
