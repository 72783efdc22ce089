#!/usr/bin/env bash
# The tables of docs/results/alignment.md, from the committed records:
#   scripts/alignment_tables.sh
set -eu
Z=${ZUBOVNET:-zubovnet}
A=docs/results/alignment
$Z table $A/synthetic2d/*_alignment.json --layout alignment
$Z table $A/digits/*_alignment.json $A/digits/*_corruptions.json --layout alignment
F=$A/fashion_mnist
rows=""
for v in paper_literal eq stab data region uniform sum aligned neural_ode; do
  for s in alignment corruptions rigorous; do
    [ -f "$F/${v}_$s.json" ] && rows="$rows $F/${v}_$s.json"
  done
done
$Z table $rows --layout alignment
$Z table $F/paper_literal_rigorous.json $F/aligned_rigorous.json $F/neural_ode_rigorous.json --layout rigorous
