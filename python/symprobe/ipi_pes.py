"""symprobe as a PES of i-PI's own Python driver:

    i-pi-py_driver -m custom -P "$(python -m symprobe.ipi_pes)" -u -a water \\
        -o "structure=init.xyz,model=water-pet,rotations=grid 2,inversion=yes"

Options (`-o key=value,...`): structure, model, rotation_energies, finite (yes: a gas-phase
system without periodic images), and the core's options (rotations, inversion, randomize, seed,
chunk, skin, threads, device, correction), checked by the core's
parser as everywhere else. Batched requests are evaluated in one model call.
`python -m symprobe.ipi_pes` prints the path of this file.
"""
from ipi.pes.dummy import Dummy_driver

__DRIVER_NAME__ = "symprobe"
__DRIVER_CLASS__ = "Symprobe_driver"


class Symprobe_driver(Dummy_driver):
    def __init__(self, structure, model, rotation_energies="no", finite="no", *args, **options):
        import ase.io

        # absolute imports: i-PI loads this file by path, outside the package
        from symprobe import load_model
        from symprobe.runtime import take_options
        from symprobe.ipi import AtomicUnitsEvaluator

        core_options = take_options(options)
        if rotation_energies not in ("yes", "no", True, False):
            raise ValueError(f"rotation_energies must be yes or no, got '{rotation_energies}'")
        if finite not in ("yes", "no", True, False):
            raise ValueError(f"finite must be yes or no, got '{finite}'")
        atoms = ase.io.read(structure, index=0)
        loaded = load_model(model, **core_options)
        self.evaluator = AtomicUnitsEvaluator(loaded, atoms.numbers,
                                              rotation_energies in ("yes", True), finite in ("yes", True))
        super().__init__(*args, **options)

    def compute(self, cell, pos):
        if isinstance(cell, list):
            return self.evaluator.evaluate(cell, pos)
        return self.evaluator.evaluate([cell], [pos])[0]


if __name__ == "__main__":
    print(__file__)
