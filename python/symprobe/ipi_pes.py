"""symprobe as a PES of i-PI's own Python driver:

    i-pi-py_driver -m custom -P $(python -c "import symprobe.ipi_pes as m; print(m.__file__)") \\
        -u -a water -o structure=init.xyz,model=model.pt,rotations=grid 2,inversion=true

Options (`-o key=value,...`): structure, model, rotations, inversion, randomize, seed, chunk,
threads, device, rotation_energies: the names of `symprobe-ipi`. Batched requests are evaluated
in one model call.
"""
from ipi.pes.dummy import Dummy_driver

__DRIVER_NAME__ = "symprobe"
__DRIVER_CLASS__ = "Symprobe_driver"


class Symprobe_driver(Dummy_driver):
    def __init__(self, structure, model, rotations="none", inversion=False, randomize=False,
                 seed=0, chunk=0, threads=0, device="cpu", rotation_energies=False, *args,
                 **kwargs):
        import ase.io

        # absolute imports: i-PI loads this file by path, outside the package
        from symprobe import load_model
        from symprobe.ipi import AtomicUnitsEvaluator

        def flag(value):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "yes", "no", "1", "0"):
                    raise ValueError(f"expected true or false, got '{value}'")
                return value.lower() in ("true", "yes", "1")
            return bool(value)

        atoms = ase.io.read(structure, index=0)
        loaded = load_model(model, device=device, threads=int(threads), rotations=rotations,
                            inversion=flag(inversion), randomize=flag(randomize), seed=int(seed),
                            chunk=int(chunk))
        self.evaluator = AtomicUnitsEvaluator(loaded, atoms.numbers, flag(rotation_energies))
        super().__init__(*args, **kwargs)

    def compute(self, cell, pos):
        if isinstance(cell, list):
            return self.evaluator.evaluate(cell, pos)
        return self.evaluator.evaluate([cell], [pos])[0]
