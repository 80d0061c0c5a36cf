# A replicated sweep on the local engine: evil at three strengths, three
# training seeds each (training.seed + 0..2). Offline and free.
#   EXPERIMENT=sweep.hcl go run mage.go results
training {
  provider     = "local"
  seed         = 1
  n_epochs     = 3
  max_parallel = 9
}

evaluation {
  provider = "local"
  limit    = 10
  task "evil_detection" { trait = "evil" }
}

model_grid {
  traits     = ["evil"]
  strengths  = ["baseline", "mild", "severe"]
  replicates = 3
  name       = "${trait}_${strength}_s${seed}"
  suffix     = "pv-${trait}-${strength}-s${seed}"
}

model "base" { base_only = true }
