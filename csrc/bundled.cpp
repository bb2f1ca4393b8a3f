// Bundled models by name, shared by every front end (Python, LAMMPS, i-PI): `water-pet` means
// <models directory>/water-pet.pt. The directory is models/ beside the installed core library
// (a wheel install) or, for editable and plain CMake builds, the source tree's
// python/symprobe/models, whose path is compiled in (SYMPROBE_SOURCE_MODELS_DIR).
#include "symprobe/symprobe.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <filesystem>

namespace symprobe {
namespace fs = std::filesystem;
namespace {

constexpr const char* MODEL_SUFFIX = ".pt";

bool directory_exists(const fs::path& path) {
    std::error_code ec;
    return !path.empty() && fs::is_directory(path, ec);
}

bool file_exists(const fs::path& path) {
    std::error_code ec;
    return !path.empty() && fs::is_regular_file(path, ec);
}

// A name, not a path: no directory part.
bool looks_like_name(const std::string& model) {
    return !model.empty() && model != "." && model != ".." && model.find('/') == std::string::npos;
}

// Absolute and without `..`: the plugin reaches the core through RUNPATH $ORIGIN/.., so the
// loader's path of the core library is .../lammps-plugin/../libsymprobe_core.so.
std::string normalized(const fs::path& path) {
    std::error_code ec;
    fs::path full = fs::weakly_canonical(fs::absolute(path, ec), ec);
    return ec ? path.string() : full.string();
}

}  // namespace

std::string bundled_models_directory() {
    Dl_info info;
    if (::dladdr(reinterpret_cast<void*>(&bundled_models_directory), &info) != 0 && info.dli_fname) {
        const fs::path installed = fs::path(info.dli_fname).parent_path() / "models";
        if (directory_exists(installed)) return normalized(installed);
    }
#ifdef SYMPROBE_SOURCE_MODELS_DIR
    if (directory_exists(SYMPROBE_SOURCE_MODELS_DIR)) return normalized(SYMPROBE_SOURCE_MODELS_DIR);
#endif
    return "";
}

std::vector<std::string> bundled_models() {
    std::vector<std::string> names;
    const std::string directory = bundled_models_directory();
    if (directory.empty()) return names;
    std::error_code ec;
    for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) {
        const fs::path& file = it->path();
        if (file.extension() == MODEL_SUFFIX && file_exists(file) && looks_like_name(file.stem().string())) {
            names.push_back(file.stem().string());
        }
    }
    std::sort(names.begin(), names.end());
    return names;
}

std::string bundled_model_path(const std::string& name) {
    if (!looks_like_name(name)) return "";
    const std::string directory = bundled_models_directory();
    if (directory.empty()) return "";
    const fs::path candidate = fs::path(directory) / (name + MODEL_SUFFIX);
    return file_exists(candidate) ? candidate.string() : "";
}

std::string resolve_model_path(const std::string& model) {
    const std::string bundled = bundled_model_path(model);
    if (file_exists(model)) {
        // a file that shadows a bundled name is named in full, so logs tell the two apart
        return bundled.empty() ? model : normalized(model);
    }
    return bundled.empty() ? model : bundled;
}

}  // namespace symprobe
