// Bundled models by name, shared by every front end (Python, LAMMPS, i-PI): `water-pet` means
// <models directory>/water-pet.pt. The directory is models/ beside the installed core library
// (a wheel install) or, for editable and plain CMake builds, the source tree's
// python/symprobe/models, whose path is compiled in (SYMPROBE_SOURCE_MODELS_DIR).
#include "symprobe/symprobe.hpp"

#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

namespace symprobe {
namespace {

constexpr const char* MODEL_SUFFIX = ".pt";

bool is_directory(const std::string& path) {
    struct stat st;
    return !path.empty() && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_file(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// A name, not a path: no directory separator and no file suffix.
bool looks_like_name(const std::string& model) {
    return !model.empty() && model.find('/') == std::string::npos &&
           model.find('.') == std::string::npos;
}

}  // namespace

std::string bundled_models_directory() {
    Dl_info info;
    if (::dladdr(reinterpret_cast<void*>(&bundled_models_directory), &info) != 0 && info.dli_fname) {
        std::string installed = std::filesystem::path(info.dli_fname).parent_path() / "models";
        if (is_directory(installed)) return installed;
    }
#ifdef SYMPROBE_SOURCE_MODELS_DIR
    if (is_directory(SYMPROBE_SOURCE_MODELS_DIR)) return SYMPROBE_SOURCE_MODELS_DIR;
#endif
    return "";
}

std::vector<std::string> bundled_models() {
    std::vector<std::string> names;
    const std::string directory = bundled_models_directory();
    if (directory.empty()) return names;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(directory, ec)) {
        if (entry.is_regular_file() && entry.path().extension() == MODEL_SUFFIX) {
            names.push_back(entry.path().stem().string());
        }
    }
    std::sort(names.begin(), names.end());
    return names;
}

std::string bundled_model_path(const std::string& name) {
    if (!looks_like_name(name)) return "";
    const std::string directory = bundled_models_directory();
    if (directory.empty()) return "";
    const std::string candidate = directory + "/" + name + MODEL_SUFFIX;
    return is_file(candidate) ? candidate : "";
}

std::string resolve_model_path(const std::string& model) {
    if (is_file(model)) return model;
    const std::string bundled = bundled_model_path(model);
    return bundled.empty() ? model : bundled;
}

}  // namespace symprobe
