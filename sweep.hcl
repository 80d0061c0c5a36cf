# A replicated sweep on the local engine: evil at three strengths, three
# numbers of epochs, three training seeds each (training.seed + 0..2): 27
# trainings. Offline and free.
#   EXPERIMENT=sweep.hcl go run mage.go results
training {
  provider     = "local"
  seed         = 1
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
  epochs     = [1, 3, 5] # each cell's n_epochs, and ${epochs}
  replicates = 3
  name       = "${trait}_${strength}_e${epochs}_s${seed}"
  suffix     = "pv-${trait}-${strength}-e${epochs}-s${seed}"
}

model "base" { base_only = true }
