"""Training: the PET-style architecture (`pet`) and `symprobe train` (`train`). Not needed to run
a model: the runtime loads exported TorchScript files."""
