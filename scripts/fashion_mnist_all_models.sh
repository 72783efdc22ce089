#!/usr/bin/env bash
# Every model of the registry (and the adversarial-training variants) at a small equal budget on Fashion-MNIST (3 epochs x 40 steps).
set -u
R=${OUT:-runs/fashion_mnist_all}; B=configs/fashion_mnist/_data.yaml; export OMP_NUM_THREADS=1
mkdir -p $R/records
common="train.epochs=3 train.milestones=[2] train.max_steps_per_epoch=40 train.progress=false train.tensorboard=false"
declare -A extra=(
  [cnn]="model.name=feedforward"
  [neural_ode]="model.name=neural_ode"
  [zubovnet]="model.name=zubovnet"
  [projnode]="model.name=projnode"
  [sodef]="model.name=sodef baseline.sodef_phase1_epochs=1 baseline.sodef_phase2_epochs=1"
  [fxts]="model.name=fxts"
  [lyanet]="model.name=lyanet"
  [pgd_at]="model.name=neural_ode adversarial.method=pgd_at"
  [trades]="model.name=neural_ode adversarial.method=trades"
  [mart]="model.name=neural_ode adversarial.method=mart"
  [zubovnet_trades]="model.name=zubovnet adversarial.method=trades"
)
for m in ${MODELS:-cnn neural_ode zubovnet projnode sodef fxts lyanet pgd_at trades mart zubovnet_trades}; do
  /usr/bin/time -f "$m train %e s" .venv/bin/zubovnet train $B ${extra[$m]} $common --out $R/$m >> $R/train.log 2>&1
  for s in clean attacks; do
    /usr/bin/time -f "$m $s %e s" .venv/bin/zubovnet eval $R/$m --suite $s --n 300 --seed 0 --no-progress --name $m --out $R/records/${m}_$s.json >> $R/eval.log 2>&1
  done
done
